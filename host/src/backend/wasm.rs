//! WebAssembly plugins: a WASI preview 1 module run by wasmtime inside the
//! host, as a task on the host's own event loop.
//!
//! Owns: engines (Winch or Cranelift), getting an instance its module (off
//! the loop: from the caches of wasm_cache.rs, or compiled at the
//! priority the settings give),
//! the sandbox (no preopened directory unless granted, a memory cap, a CPU
//! deadline per request, an allow-list for lightningd rpc calls), the
//! `cln.rpc_call`/`cln.rpc_result` imports, and stopping an instance
//! whatever it is doing. Must not: interpret the plugin protocol, or hold
//! the loop: whatever waits (stdin, room for output, lightningd's answer to
//! an rpc call, a compile) is a future, and a guest that computes yields.
//!
//! Each instance is one task running `_start` with `call_async`, so the
//! guest runs on a fiber of its own, on the loop's thread. Its stdio are
//! host-side streams (wasm_stdio.rs): a message the supervisor sends is
//! read by the guest from its channel, and what the guest writes is framed
//! and reported as it is written, with no pipe and no thread in between. A
//! guest blocked reading stdin is a pending future that costs nothing;
//! closing its stdin (dropping the sender) is its end of file, and a stop
//! drops the call wherever it waits. A guest computing away is checked at
//! every epoch tick: it yields to the loop, and is stopped when its CPU
//! deadline or a stop has come.

use super::wasm_cache;
use super::wasm_stdio::{GuestOutput, GuestStdin, IoClock};
use super::{Control, Exit, Instance, InstanceEvent, SandboxStop};
use anyhow::{anyhow, Context as _};
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::Notify;
use wasmtime::{
    Caller, Config, Engine, InstancePre, Linker, Module, ResourceLimiter, Store, Strategy,
    UpdateDeadline,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

pub use super::wasm_settings::{
    CacheSettings, CompileRecord, Compiler, GrantedDir, ModuleSource, OptimizeError, Optimized,
    Priority, Settings, Tier, Urgency, OPT_COMPILER, OPT_RELOAD_PRIORITY, OPT_TIER,
};

/// Tells an instance to stop now.
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

/// How often the engines' epoch ticks while no guest computes: how soon a
/// guest that starts computing is first checked.
const EPOCH_TICK_IDLE: Duration = Duration::from_millis(5);

/// How often it ticks while a guest computes: the longest a computing
/// guest holds the loop before it yields.
const EPOCH_TICK_BUSY: Duration = Duration::from_millis(1);

/// A guest was seen computing at an epoch check since the last tick (the
/// ticker then ticks at [`EPOCH_TICK_BUSY`]; idle, it wakes less often).
static COMPUTING: AtomicBool = AtomicBool::new(false);

/// The engines whose epoch the ticker advances.
type Ticked = Mutex<Vec<Engine>>;

/// Starts the one thread that advances every engine's epoch (once), and
/// returns the list it ticks. It must start at normal priority: a thread
/// inherits its creator's, and a ticker starved like a background compile
/// would let a guest hold the loop and outlive its CPU deadline. So the
/// compile thread calls this before it lowers itself ([`module_off_loop`]),
/// and every engine is made on a compile thread.
fn ticker() -> Result<&'static Ticked, String> {
    static TICKED: OnceLock<Result<Ticked, String>> = OnceLock::new();
    TICKED
        .get_or_init(|| {
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(|| loop {
                    if let Some(Ok(ticked)) = TICKED.get() {
                        let engines = ticked.lock().map(|e| e.clone()).unwrap_or_default();
                        for engine in &engines {
                            engine.increment_epoch();
                        }
                    }
                    std::thread::sleep(match COMPUTING.swap(false, Ordering::Relaxed) {
                        true => EPOCH_TICK_BUSY,
                        false => EPOCH_TICK_IDLE,
                    });
                })
                .map(|_| Mutex::new(Vec::new()))
                .map_err(|e| format!("cannot start the epoch ticker: {e}"))
        })
        .as_ref()
        .map_err(|e| e.clone())
}

struct Engines {
    engine: Engine,
    linker: Linker<State>,
    /// The engine's configuration, as the caches key it.
    hash: [u8; 32],
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
    if compiler == Compiler::Cranelift {
        config
            .enable_incremental_compilation(incremental().clone())
            .map_err(|e| anyhow!("{e:#}"))?;
    }
    let engine = Engine::new(&config).map_err(|e| anyhow!("{e:#}"))?;
    ticker()
        .map_err(|e| anyhow!("{e}"))?
        .lock()
        .map_err(|_| anyhow!("the epoch ticker's list is poisoned"))?
        .push(engine.clone());
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
    let hash = wasm_cache::engine_hash(&engine);
    Ok(Engines {
        engine,
        linker,
        hash,
    })
}

/// Cranelift's incremental compilation cache (one for the run; see
/// [`wasm_cache::Incremental`]).
fn incremental() -> &'static Arc<wasm_cache::Incremental> {
    static STORE: OnceLock<Arc<wasm_cache::Incremental>> = OnceLock::new();
    STORE.get_or_init(Default::default)
}

/// Points the incremental cache at the directory `cache` names, before a
/// Cranelift compile.
fn configure_incremental(cache: &CacheSettings) {
    incremental().configure(cache.incremental_dir(), cache.incremental_max());
}

/// Per-instance state inside the store.
struct State {
    wasi: WasiP1Ctx,
    memory_cap: usize,
    memory_refused: Option<usize>,
    rpc_socket: Option<PathBuf>,
    rpc_allow: Option<crate::rpc_allow::Methods>,
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

/// A compiled module ready to instantiate: its imports already resolved
/// against the host's linker, once per compiled module (kept beside it in
/// the in-memory cache), not at every start.
#[derive(Clone)]
struct Ready {
    module: Module,
    pre: InstancePre<State>,
}

impl Ready {
    fn new(module: Module, compiler: Compiler) -> anyhow::Result<Ready> {
        let pre = engines(compiler)?
            .linker
            .instantiate_pre(&module)
            .map_err(|e| LinkError(format!("{e:#}")))?;
        Ok(Ready { module, pre })
    }
}

/// A module that compiled but whose imports the host does not provide:
/// the instance says it cannot be instantiated, not that it does not
/// compile.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct LinkError(String);

/// The in-memory cache of this run of the host.
fn memory() -> &'static Mutex<wasm_cache::Lru<Ready>> {
    static MEMORY: OnceLock<Mutex<wasm_cache::Lru<Ready>>> = OnceLock::new();
    MEMORY.get_or_init(Default::default)
}

/// A module compiled now, which the on-disk cache does not have yet.
struct ToStore {
    key: wasm_cache::Key,
    module: Module,
}

/// The module for `bytes` by `compiler`, if either cache has it; a disk
/// entry that failed its checks is reported and recompiled.
fn cached_module(
    content: [u8; 32],
    compiler: Compiler,
    cache: &CacheSettings,
    report: &impl Fn(InstanceEvent),
) -> anyhow::Result<(wasm_cache::Key, Option<(Ready, ModuleSource)>)> {
    let engines = engines(compiler)?;
    let key = wasm_cache::Key::new(content, compiler, engines.hash);
    if cache.memory_max > 0 && cache.memory_entries > 0 {
        if let Some(r) = memory().lock().ok().and_then(|mut c| c.get(&key)) {
            return Ok((key, Some((r, ModuleSource::Memory))));
        }
    }
    if let Some(disk) = disk(cache) {
        match disk.load(&key, &engines.engine) {
            wasm_cache::Loaded::Hit(m) => {
                let ready = Ready::new(m, compiler)?;
                remember(key, &ready, cache);
                return Ok((key, Some((ready, ModuleSource::Disk))));
            }
            wasm_cache::Loaded::Missing => {}
            wasm_cache::Loaded::Rejected(why) => report(InstanceEvent::Warn(format!(
                "the compiled module cached in {why}: compiling it again"
            ))),
        }
    }
    Ok((key, None))
}

/// The on-disk cache, if there is one.
fn disk(cache: &CacheSettings) -> Option<wasm_cache::Disk<'_>> {
    let dir = cache.dir.as_deref().filter(|_| cache.disk_max > 0)?;
    Some(wasm_cache::Disk {
        dir,
        max: cache.disk_max,
    })
}

/// Keeps `ready` in the in-memory cache.
fn remember(key: wasm_cache::Key, ready: &Ready, cache: &CacheSettings) {
    if cache.memory_max == 0 || cache.memory_entries == 0 {
        return;
    }
    if let Ok(mut c) = memory().lock() {
        let size = wasm_cache::module_size(&ready.module);
        c.insert(
            key,
            ready.clone(),
            size,
            cache.memory_max,
            cache.memory_entries,
        );
    }
}

/// Reads `path` and gets its module: from a cache, or compiled now (at
/// the priority the calling thread runs at; see [`module_off_loop`]).
/// Reports where it came from.
fn module_for(
    path: &Path,
    settings: &Settings,
    urgency: Urgency,
    report: &impl Fn(InstanceEvent),
) -> anyhow::Result<(Ready, Compiler, Option<ToStore>)> {
    let t = Instant::now();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !bytes.starts_with(b"\0asm") {
        anyhow::bail!("{} is not a wasm module (no \\0asm header)", path.display());
    }
    let content = wasm_cache::content_hash(&bytes);
    let cache = &settings.cache;
    let done = |ready: Ready, compiler, source, store: Option<wasm_cache::Key>| {
        report(InstanceEvent::Compiled(CompileRecord {
            millis: t.elapsed().as_secs_f64() * 1000.0,
            source,
            compiler,
        }));
        let store = store.map(|key| ToStore {
            key,
            module: ready.module.clone(),
        });
        (ready, compiler, store)
    };
    let tiering = tiers_up(settings);
    if tiering {
        // A Cranelift version made earlier (in the background, after Winch
        // served these bytes) serves in place of Winch's.
        if let (_, Some((r, source))) = cached_module(content, Compiler::Cranelift, cache, report)?
        {
            return Ok(done(r, Compiler::Cranelift, source, None));
        }
    }
    let mut compiler = settings.compiler;
    configure_incremental(cache);
    let (mut key, found) = cached_module(content, compiler, cache, report)?;
    if let Some((r, source)) = found {
        if tiering {
            optimizer().submit(path, bytes, content, settings, None);
        }
        return Ok(done(r, compiler, source, None));
    }
    let module = match compile(&engines(compiler)?.engine, &bytes, urgency, settings) {
        Ok(m) => m,
        // Winch does not support every proposal: fall back, and say so.
        Err(e) if compiler == Compiler::Winch => {
            report(InstanceEvent::Warn(format!(
                "Winch cannot compile it ({e:#}); using Cranelift"
            )));
            compiler = Compiler::Cranelift;
            let (k, found) = cached_module(content, compiler, cache, report)?;
            if let Some((r, source)) = found {
                return Ok(done(r, compiler, source, None));
            }
            key = k;
            compile(&engines(compiler)?.engine, &bytes, urgency, settings)
                .map_err(|e| anyhow!("{e:#}"))?
        }
        Err(e) => return Err(anyhow!("{e:#}")),
    };
    let ready = Ready::new(module, compiler)?;
    remember(key, &ready, cache);
    let store = disk(cache).is_some().then_some(key);
    if tiering && compiler == Compiler::Winch {
        optimizer().submit(path, bytes, content, settings, None);
    }
    Ok(done(ready, compiler, ModuleSource::Compiled, store))
}

/// Whether a module Winch compiles gets a Cranelift version in the
/// background: tiering is on, Winch is the compiler asked for, and the
/// in-memory cache is on (the Cranelift version waits there for the next
/// start of the same bytes; without it, the compile would be for nothing).
fn tiers_up(settings: &Settings) -> bool {
    let c = &settings.cache;
    c.tier == Tier::Auto
        && settings.compiler == Compiler::Winch
        && c.memory_max > 0
        && c.memory_entries > 0
}

/// Makes the Cranelift version of the module at `path` (its bytes as they
/// are now) ready in the in-memory cache, compiling it at the lowest
/// priority if no cache has it, and says when it is: from then on, a
/// [`spawn`] of the same bytes with the same settings runs it, loading
/// nothing and compiling nothing (its [`CompileRecord`] says
/// `compiler: cranelift`, `source: memory`). A Winch compile already asks
/// for this in the background, so this usually waits for that compile
/// rather than starting one. Never on the loop: the reading and the
/// compile happen on the optimizer's thread.
pub async fn optimize(path: &Path, settings: &Settings) -> Result<Optimized, OptimizeError> {
    if !tiers_up(settings) {
        return Err(OptimizeError::Off);
    }
    let t = Instant::now();
    // Started here, at normal priority, if no compile started it yet: a
    // thread inherits its creator's priority, and the optimizer's is the
    // lowest.
    writer().map_err(OptimizeError::Unavailable)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    optimizer().request(path.to_path_buf(), settings.clone(), tx);
    let source = rx
        .await
        .unwrap_or_else(|_| Err(OptimizeError::Unavailable("the optimizer ended".into())))?;
    Ok(Optimized {
        millis: t.elapsed().as_secs_f64() * 1000.0,
        source,
    })
}

/// A waiter for an optimization.
type Waiter = tokio::sync::oneshot::Sender<Result<ModuleSource, OptimizeError>>;

/// One file to optimize: its bytes as a Winch compile read them, or
/// (`bytes: None`) as [`optimize`] finds them when the job starts.
struct OptJob {
    path: PathBuf,
    bytes: Option<(Vec<u8>, [u8; 32])>,
    settings: Settings,
    waiters: Vec<Waiter>,
}

/// The queue of Cranelift compiles in the background, one at a time, on a
/// thread (and a rayon pool) at the lowest priority: at most one job per
/// file waits, a newer version taking the place of an older one.
struct Optimizer {
    queue: Mutex<std::collections::VecDeque<OptJob>>,
    wake: std::sync::Condvar,
}

/// The optimizer, its thread started at the first use.
fn optimizer() -> &'static Optimizer {
    static OPTIMIZER: OnceLock<Optimizer> = OnceLock::new();
    static THREAD: OnceLock<Result<(), String>> = OnceLock::new();
    let o = OPTIMIZER.get_or_init(|| Optimizer {
        queue: Mutex::new(Default::default()),
        wake: std::sync::Condvar::new(),
    });
    let started = THREAD.get_or_init(|| {
        std::thread::Builder::new()
            .name("wasm-optimize".into())
            .spawn(|| {
                lower_priority();
                if let Some(o) = OPTIMIZER.get() {
                    o.run();
                }
            })
            .map(|_| ())
            .map_err(|e| format!("cannot start the optimizer: {e}"))
    });
    if let Err(e) = started {
        // Nothing will run the queue: answer whoever waits in it.
        if let Ok(mut q) = o.queue.lock() {
            for job in q.drain(..) {
                for w in job.waiters {
                    let _ = w.send(Err(OptimizeError::Unavailable(e.clone())));
                }
            }
        }
    }
    o
}

impl Optimizer {
    /// Queues the Cranelift compile of `bytes` (read from `path` by a
    /// Winch compile), unless the same bytes already wait.
    fn submit(
        &self,
        path: &Path,
        bytes: Vec<u8>,
        content: [u8; 32],
        settings: &Settings,
        waiter: Option<Waiter>,
    ) {
        self.push(OptJob {
            path: path.to_path_buf(),
            bytes: Some((bytes, content)),
            settings: settings.clone(),
            waiters: waiter.into_iter().collect(),
        });
    }

    /// Queues the optimization of `path` as it is when the job starts,
    /// for [`optimize`].
    fn request(&self, path: PathBuf, settings: Settings, waiter: Waiter) {
        self.push(OptJob {
            path,
            bytes: None,
            settings,
            waiters: vec![waiter],
        });
    }

    fn push(&self, mut job: OptJob) {
        let Ok(mut q) = self.queue.lock() else {
            return;
        };
        if let Some(waiting) = q.iter_mut().find(|j| j.path == job.path) {
            let same = match (&waiting.bytes, &job.bytes) {
                (Some((_, a)), Some((_, b))) => a == b,
                // A request for the file as it will be: it joins any job.
                (_, None) => true,
                (None, Some(_)) => false,
            };
            if same {
                waiting.waiters.append(&mut job.waiters);
                return;
            }
            // Newer bytes: the older ones will not serve again soon. Whoever
            // waited for the file gets it optimized as it is now.
            job.waiters.append(&mut waiting.waiters);
            *waiting = job;
        } else {
            q.push_back(job);
        }
        self.wake.notify_one();
    }

    /// Runs the queue, one job at a time, forever.
    fn run(&self) {
        loop {
            let job = {
                let Ok(mut q) = self.queue.lock() else {
                    return;
                };
                loop {
                    if let Some(job) = q.pop_front() {
                        break job;
                    }
                    q = match self.wake.wait(q) {
                        Ok(q) => q,
                        Err(_) => return,
                    };
                }
            };
            let result = optimize_now(&job);
            for w in job.waiters {
                let _ = w.send(result.clone());
            }
            give_back_freed_memory();
        }
    }
}

/// Compiles one job with Cranelift (or finds it in a cache), keeps it in
/// the in-memory cache, and has the writer keep it on disk.
fn optimize_now(job: &OptJob) -> Result<ModuleSource, OptimizeError> {
    let read;
    let (bytes, content) = match &job.bytes {
        Some((b, c)) => (b.as_slice(), *c),
        None => {
            let b = std::fs::read(&job.path).map_err(|e| {
                OptimizeError::Read(format!("cannot read {}: {e}", job.path.display()))
            })?;
            if !b.starts_with(b"\0asm") {
                return Err(OptimizeError::Read(format!(
                    "{} is not a wasm module",
                    job.path.display()
                )));
            }
            let c = wasm_cache::content_hash(&b);
            read = b;
            (read.as_slice(), c)
        }
    };
    let cache = &job.settings.cache;
    let unavailable = |e: anyhow::Error| OptimizeError::Unavailable(format!("{e:#}"));
    // A problem with a cache file is only a miss here: the compile below
    // rewrites it, and the Winch start already warned about its own.
    let (key, found) =
        cached_module(content, Compiler::Cranelift, cache, &|_| {}).map_err(unavailable)?;
    if let Some((_, source)) = found {
        return Ok(source);
    }
    configure_incremental(cache);
    let engine = &engines(Compiler::Cranelift).map_err(unavailable)?.engine;
    // On rayon's global pool, whose threads are at the lowest priority
    // too: nothing waits for this compile.
    compile_pool();
    let module =
        Module::new(engine, bytes).map_err(|e| OptimizeError::Compile(format!("{e:#}")))?;
    let ready = Ready::new(module, Compiler::Cranelift)
        .map_err(|e| OptimizeError::Compile(format!("{e:#}")))?;
    remember(key, &ready, cache);
    if let (Some(dir), Some(_)) = (cache.dir.clone(), disk(cache)) {
        if let Ok(w) = writer() {
            let _ = w.send(WriteJob {
                dir,
                max: cache.disk_max,
                store: ToStore {
                    key,
                    module: ready.module.clone(),
                },
                report: Box::new(|_| {}),
            });
        }
    }
    Ok(ModuleSource::Compiled)
}

/// Reads and compiles the module for `path` (or takes it from a cache)
/// on a thread of its own, so that the loop goes on meanwhile: a compile
/// takes tens to hundreds of milliseconds, and even a cached module is a
/// file to read. A compile while a version serves runs at
/// [`Settings::reload_priority`]. A module compiled now is written to the
/// on-disk cache after it was handed over, by the [`writer`] thread: the
/// new version does not wait for it, and the write does not wait behind
/// a busy node as a lowered compile thread would.
async fn module_off_loop(
    path: &Path,
    settings: &Settings,
    urgency: Urgency,
    report: impl Fn(InstanceEvent) + Send + 'static,
) -> anyhow::Result<(Ready, Compiler)> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let path = path.to_path_buf();
    let settings = settings.clone();
    std::thread::Builder::new()
        .name("wasm-compile".into())
        .spawn(move || {
            // Before lowering this thread: the ticker and the writer
            // inherit its priority.
            let writer = match ticker().and_then(|_| writer()) {
                Ok(w) => w,
                Err(e) => {
                    let _ = tx.send(Err(anyhow!("{e}")));
                    return;
                }
            };
            if low_priority(urgency, &settings) {
                lower_priority();
            }
            let (module, store) = match module_for(&path, &settings, urgency, &report) {
                Ok((m, c, store)) => (Ok((m, c)), store),
                Err(e) => (Err(e), None),
            };
            // Before the module is handed over: what the compile freed is
            // back with the system by the time the new version serves.
            give_back_freed_memory();
            let _ = tx.send(module);
            if let (Some(s), Some(dir)) = (store, settings.cache.dir.clone()) {
                let _ = writer.send(WriteJob {
                    dir,
                    max: settings.cache.disk_max,
                    store: s,
                    report: Box::new(report),
                });
            }
        })
        .context("cannot start a thread to compile it")?;
    rx.await
        .unwrap_or_else(|_| Err(anyhow!("the compiler panicked")))
}

/// A compiled module for the on-disk cache.
struct WriteJob {
    dir: PathBuf,
    max: u64,
    store: ToStore,
    report: Box<dyn Fn(InstanceEvent) + Send>,
}

/// Starts the one thread that writes compiled modules to the on-disk
/// cache (once), and returns its queue. Like the [`ticker`], it must
/// start at normal priority (a thread inherits its creator's): a write
/// is a few milliseconds of serializing and I/O that nobody waits for,
/// but at nice 19 on a busy node it could lag behind minutes of compiles,
/// holding every compiled module it has not written yet in memory.
fn writer() -> Result<&'static std::sync::mpsc::Sender<WriteJob>, String> {
    static WRITER: OnceLock<Result<std::sync::mpsc::Sender<WriteJob>, String>> = OnceLock::new();
    WRITER
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<WriteJob>();
            std::thread::Builder::new()
                .name("wasm-cache-write".into())
                .spawn(move || {
                    for job in rx {
                        let disk = wasm_cache::Disk {
                            dir: &job.dir,
                            max: job.max,
                        };
                        if let Err(e) = disk.store(&job.store.key, &job.store.module) {
                            warn_once(&job.report, format!("cannot keep the compiled module on disk: {e:#} (set autoreload-wasm-cache-dir, or off)"));
                        }
                        drop(job);
                        give_back_freed_memory();
                    }
                })
                .map(|_| tx)
                .map_err(|e| format!("cannot start the cache writer: {e}"))
        })
        .as_ref()
        .map_err(|e| e.clone())
}

/// Reports `warning` the first time only (in this run of the host): a
/// cache directory that cannot be written would otherwise say so on every
/// reload.
fn warn_once(report: &impl Fn(InstanceEvent), warning: String) {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        report(InstanceEvent::Warn(warning));
    }
}

/// Whether a compile runs at the lowest priority: only in the background
/// (a version serves meanwhile), and only if the user asked for it.
fn low_priority(urgency: Urgency, settings: &Settings) -> bool {
    urgency == Urgency::Background && settings.reload_priority == Priority::Low
}

/// Hands the memory freed since the last call back to the system. An
/// instance's allocations are made and freed on the loop's thread, a
/// compile's on threads that come and go, and glibc keeps what was freed
/// in each of its arenas: over many reloads the host's RSS would creep up
/// by what fragmentation keeps. Called after each compile, off the loop
/// (it walks every arena).
fn give_back_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only takes a size and is safe to call from any
    // thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Compiles a module, spreading its functions over a rayon pool. At low
/// priority ([`low_priority`]): on the calling thread, which
/// [`module_off_loop`] lowered, and rayon's global pool, whose threads are
/// lowered too (see [`compile_pool`]): the serving version's calls never
/// wait for the compiler, and on a busy machine the swap comes later.
/// Otherwise (the default, and always when no version serves): at normal
/// priority, on a pool of its own, since the user who saved (or the
/// calls waiting for a plugin that is down) waits for it; the serving
/// version's calls share the CPU with it meanwhile.
fn compile(
    engine: &Engine,
    bytes: &[u8],
    urgency: Urgency,
    settings: &Settings,
) -> wasmtime::Result<Module> {
    if !low_priority(urgency, settings) {
        static NORMAL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
        let pool = NORMAL.get_or_init(|| {
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
    Module::new(engine, bytes)
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

/// Lowers the calling thread to nice 19, the lowest priority of the
/// ordinary scheduler: a call's thread wins the CPU from it, while it still
/// gets its share on a busy machine (`SCHED_IDLE`, tried instead, stalled
/// calls no less and made reloads under load slower: BENCHMARKS.md, profile
/// notes). On Linux a thread has a nice value of its own, so this
/// leaves the rest of the host alone. A failure only costs the priority,
/// so it is ignored.
fn lower_priority() {
    // SAFETY: setpriority takes no pointers; `who` = 0 is the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

/// Starts `path` as a wasm instance with `settings`, reporting through
/// `report`: a task on the caller's loop (the host's), which compiles the
/// module off the loop, then runs it.
pub fn spawn(
    path: &Path,
    settings: &Settings,
    urgency: Urgency,
    report: impl Fn(InstanceEvent) + Send + Sync + Clone + 'static,
) -> std::io::Result<Instance> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = Arc::new(Stop::default());
    let task_stop = stop.clone();
    let path = path.to_path_buf();
    let settings = settings.clone();
    let running = tokio::spawn({
        let report = report.clone();
        async move { run(&path, &settings, urgency, rx, task_stop, report).await }
    });
    tokio::spawn(async move {
        // A panic inside the instance's task (none is known) must still end
        // the instance, or whatever it had in flight would wait forever.
        let exit = running
            .await
            .unwrap_or_else(|e| Exit::plain(format!("its task ended without a word: {e}")));
        // Everything it wrote was reported as it was written: this is last.
        report(InstanceEvent::Exited(exit));
    });
    Ok(Instance {
        stdin: Some(super::Stdin::Channel(tx)),
        control: Control::Wasm(stop),
    })
}

/// Compiles, instantiates and runs the instance to its end; returns how it
/// ended.
async fn run<R: Fn(InstanceEvent) + Send + Sync + Clone + 'static>(
    path: &Path,
    settings: &Settings,
    urgency: Urgency,
    stdin: UnboundedReceiver<Bytes>,
    stop: Arc<Stop>,
    report: R,
) -> Exit {
    let fail = |how: &str| Exit::plain(how);
    // A stop ends the instance wherever it waits: for its compile, or
    // inside the guest (the call is dropped).
    let woken = stop.wake.notified();
    tokio::pin!(woken);
    let compiled = tokio::select! {
        biased;
        _ = &mut woken => return fail("stopped"),
        m = module_off_loop(path, settings, urgency, report.clone()) => m,
    };
    let (ready, compiler) = match compiled {
        Ok(m) => m,
        Err(e) if e.is::<LinkError>() => return fail(&format!("cannot be instantiated: {e:#}")),
        Err(e) => return fail(&format!("does not compile: {e:#}")),
    };
    let engines = match engines(compiler) {
        Ok(e) => e,
        Err(e) => return fail(&format!("{e:#}")),
    };
    let clock = Arc::new(IoClock::new());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stdout = GuestOutput::stdout(report.clone(), clock.clone());
    let stderr = GuestOutput::stderr(report.clone());
    let mut b = WasiCtxBuilder::new();
    b.stdin(GuestStdin::new(stdin, clock.clone()))
        .stdout(stdout.clone())
        .stderr(stderr.clone())
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
            return fail(&format!(
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
            rpc_allow: settings
                .rpc_allow
                .as_ref()
                .and_then(|a| a.for_plugin(&name)),
            rpc_pending: None,
            io: clock.clone(),
            warn: Box::new(move |w| warn_report(InstanceEvent::Warn(w))),
        },
    );
    store.limiter(|s| s as &mut dyn ResourceLimiter);
    let runaway = Arc::new(AtomicBool::new(false));
    let (cb_stop, cb_runaway, timeout) = (stop.clone(), runaway.clone(), settings.request_timeout);
    store.set_epoch_deadline(1);
    // What `epoch_deadline_async_yield_and_update` does (yield to the loop
    // at every tick), plus the stop and the CPU deadline, which need a
    // callback of their own. It yields with tokio's `yield_now`, which lets
    // the loop poll for I/O before the guest goes on (a plain wake would
    // put the guest back in the run queue ahead of lightningd's input).
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
        if idle < EPOCH_TICK_BUSY {
            // It did I/O within the last tick: a request being handled,
            // not yet a computation worth a trip around the loop.
            return Ok(UpdateDeadline::Continue(1));
        }
        COMPUTING.store(true, Ordering::Relaxed);
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ))
    });
    clock.touch();
    let ran = async {
        let instance = ready
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| format!("cannot be instantiated: {e:#}"))?;
        let start = instance
            .get_typed_func::<(), ()>(&mut store, "_start")
            .map_err(|_| {
                "has no _start function: build a binary crate for wasm32-wasip1".to_string()
            })?;
        Ok::<_, String>(start.call_async(&mut store, ()).await)
    };
    let result = tokio::select! {
        biased;
        _ = &mut woken => None,
        r = ran => Some(r),
    };
    // What it left unfinished on stdout (a message cut short) and stderr
    // comes before its end.
    stdout.finish();
    stderr.finish();
    let result = match result {
        None => return fail("stopped"),
        Some(Err(why)) => return fail(&why),
        Some(Ok(r)) => r,
    };
    match result {
        Ok(()) => fail("exited with status 0"),
        Err(e) => {
            if let Some(code) = e.downcast_ref::<I32Exit>() {
                return fail(&format!("exited with status {}", code.0));
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
    use crate::rpc_allow::{check, Refusal};
    let parsed: Option<serde_json::Value> = serde_json::from_slice(req).ok();
    if parsed
        .as_ref()
        .and_then(|v| v.get("method"))
        .and_then(|m| m.as_str())
        .is_none()
    {
        return Err(rpc_error(
            req,
            "cln-autoreload: not a JSON-RPC request".into(),
        ));
    }
    let checked = match &state.rpc_allow {
        None => req.to_vec(),
        Some(allow) => match check(allow, req) {
            Ok(checked) => checked,
            Err(Refusal::NotRequest) => {
                return Err(rpc_error(
                    req,
                    "cln-autoreload: not a JSON-RPC request".into(),
                ))
            }
            Err(Refusal::Method(method)) => {
                (state.warn)(format!(
                    "refused its call to lightningd's '{method}': not in autoreload-wasm-rpc-allow ({})",
                    allow.describe()
                ));
                return Err(rpc_error(
                    req,
                    format!(
                        "cln-autoreload: calling '{method}' is not allowed (autoreload-wasm-rpc-allow)"
                    ),
                ));
            }
        },
    };
    let socket = state.rpc_socket.clone().ok_or_else(|| {
        rpc_error(
            req,
            "cln-autoreload: lightningd's rpc socket is not known yet (init has not happened)"
                .into(),
        )
    })?;
    Ok((socket, checked))
}
