//! The mixed soak and the resource-hygiene measurement, shared by the short
//! versions in the e2e suite and the long ones in the `soak` bin.
//!
//! A soak runs a node (the lightningd stand-in) with cln-autoreload managing
//! one plugin (the Python test plugin, or the wasm test guest), and, for a
//! given time:
//! - a few callers call the plugin's methods in a closed loop;
//! - one task fires a hook registered by the plugin (`dev-hook`), one sends
//!   it notifications (`dev-notify`), one makes it send log notifications;
//! - a chaos task, at random points chosen by a seeded RNG, writes new
//!   versions (renamed into place, or written in place), calls
//!   `autoreload-restart`, writes versions that crash in `getmanifest` or
//!   `init` (native) or do not compile (wasm) followed by a good one, and
//!   makes the plugin crash in the middle of a request or halfway through
//!   writing its answer (native) or trap (wasm).
//!
//! Everything is counted where it can be seen: answers and errors by the
//! callers, responses to an id nothing waits for (answered twice) by the
//! stand-in (`dev-counters`), log notifications in the stand-in's log.

use crate::{testguest_version, testplugin_text, write_atomically, write_testplugin};
use crate::{Node, NodeBuilder, RpcError, CALL_ID};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a call may stay unanswered before it counts as hung: far more
/// than any reload, grace period or crash back-off takes.
pub const HUNG_BOUND: Duration = Duration::from_secs(60);

/// Error kinds (`error.data.kind`, which cln-autoreload puts in every
/// error it answers with: host/src/jsonrpc.rs `ErrorKind`) a caller may
/// get while the plugin is reloaded or crashes: the call was in flight in
/// a generation that was replaced (`reloaded`) or died (`crashed`), or no
/// generation runs (`down`). Any other kind, and any error without a kind
/// (the plugin's own, a broken socket), is unknown, and a failure.
pub const LOAD_ERROR_KINDS: &[&str] = &["reloaded", "crashed", "down"];

/// What the chaos task's own calls may get besides those: an
/// `autoreload-restart` asked for while a start is failing says so.
pub const CHAOS_ERROR_KINDS: &[&str] = &["reloaded", "crashed", "down", "reload-failed"];

/// The kind of an error: its `error.data.kind` when that is one of
/// `known`; otherwise `unknown: <message>` (no kind) or
/// `unknown: [<kind>] <message>` (a kind not expected here), so that the
/// report shows what the caller was told.
pub fn error_kind(e: &RpcError, known: &[&str]) -> String {
    let kind = e.kind();
    if known.contains(&kind) {
        return kind.to_string();
    }
    let message: String = e.message().chars().take(160).collect();
    if kind.is_empty() {
        format!("unknown: {message}")
    } else {
        format!("unknown: [{kind}] {message}")
    }
}

/// Which plugin the soak runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// The Python test plugin, a child process.
    Native,
    /// The wasm test guest, in-process.
    Wasm,
}

impl Flavor {
    /// "native" or "wasm".
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Native => "native",
            Flavor::Wasm => "wasm",
        }
    }
}

/// A small deterministic RNG (SplitMix64): the same seed replays the same
/// choices (not the same timing).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// A seed from the clock, for runs that do not give one.
pub fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

/// What a soak does.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Which plugin.
    pub flavor: Flavor,
    /// How long the load runs.
    pub duration: Duration,
    /// Seeds the chaos task's choices.
    pub seed: u64,
    /// Concurrent rpc callers.
    pub callers: usize,
    /// The chaos task waits a random time in this range (ms) between two
    /// actions, once the previous one has settled.
    pub chaos_pause_ms: (u64, u64),
}

/// Calls of one stream of load.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Calls sent.
    pub sent: u64,
    /// Answered with a result.
    pub ok: u64,
    /// Answered with an error, by kind.
    pub errors: BTreeMap<String, u64>,
    /// Not answered within [`HUNG_BOUND`].
    pub hung: u64,
}

impl Tally {
    /// Errors of any kind.
    pub fn errored(&self) -> u64 {
        self.errors.values().sum()
    }

    fn add(&mut self, other: &Tally) {
        self.sent += other.sent;
        self.ok += other.ok;
        self.hung += other.hung;
        for (k, n) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += n;
        }
    }
}

/// What a soak saw.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Which plugin.
    pub flavor: &'static str,
    /// The seed of the chaos task.
    pub seed: u64,
    /// Concurrent rpc callers.
    pub callers: usize,
    /// How long the load ran.
    pub elapsed: Duration,
    /// rpc calls to the plugin's methods.
    pub rpc: Tally,
    /// Hooks fired through the stand-in.
    pub hooks: Tally,
    /// Hook calls answered `continue` (by the plugin, or on its behalf).
    pub hooks_continued: u64,
    /// `dev-notify` calls (notifications to the plugin).
    pub notifications_in: Tally,
    /// Notifications the stand-in handed to the host.
    pub notifications_in_sent: u64,
    /// Notifications the host could not hand on (no version running).
    pub notifications_in_dropped: u64,
    /// Calls that make the plugin send a log notification.
    pub notifications_out: Tally,
    /// Those log notifications that reached the stand-in's log.
    pub notifications_out_seen: u64,
    /// Chaos actions taken, by kind.
    pub chaos: BTreeMap<&'static str, u64>,
    /// The chaos task's own calls (the crashing ones fail on purpose).
    pub chaos_calls: Tally,
    /// Generations started during the soak.
    pub generations: u64,
    /// Crashes the host counted.
    pub crashes: u64,
    /// Responses the stand-in got for ids nothing waited for.
    pub answered_twice: u64,
    /// Whether the plugin answered a call after the load stopped.
    pub serves_after: bool,
}

impl Report {
    /// All calls of the load (rpc, hooks, notifications).
    pub fn load(&self) -> Tally {
        let mut t = Tally::default();
        for s in [
            &self.rpc,
            &self.hooks,
            &self.notifications_in,
            &self.notifications_out,
        ] {
            t.add(s);
        }
        t
    }

    /// Error kinds outside the known lists.
    pub fn unknown_kinds(&self) -> Vec<String> {
        let kinds: std::collections::BTreeSet<String> = self
            .load()
            .errors
            .keys()
            .chain(self.chaos_calls.errors.keys())
            .filter(|k| k.starts_with("unknown: "))
            .cloned()
            .collect();
        kinds.into_iter().collect()
    }

    /// What went wrong; empty if everything held.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let load = self.load();
        if load.hung + self.chaos_calls.hung > 0 {
            p.push(format!("{} calls hung", load.hung + self.chaos_calls.hung));
        }
        if self.answered_twice > 0 {
            p.push(format!(
                "{} responses to an id nothing waited for (answered twice)",
                self.answered_twice
            ));
        }
        for k in self.unknown_kinds() {
            p.push(format!("unknown error kind {k:?}"));
        }
        for (name, t) in [
            ("rpc", &self.rpc),
            ("hooks", &self.hooks),
            ("notifications in", &self.notifications_in),
            ("notifications out", &self.notifications_out),
        ] {
            if t.ok == 0 {
                p.push(format!("no {name} call succeeded"));
            }
        }
        if self.hooks.errored() > 0 {
            p.push("a hook call failed (lightningd would abort)".into());
        }
        if self.notifications_out_seen < self.notifications_out.ok {
            p.push(format!(
                "{} log notifications answered for but only {} reached lightningd",
                self.notifications_out.ok, self.notifications_out_seen
            ));
        }
        if self.chaos.values().sum::<u64>() == 0 {
            p.push("the chaos task did nothing".into());
        }
        if !self.serves_after {
            p.push("the plugin did not serve after the soak".into());
        }
        p
    }

    /// One paragraph for a log.
    pub fn summary(&self) -> String {
        format!(
            "{} soak, seed {}, {:.0}s: load {:?}; hooks continued {}; notifications in sent {} dropped {}; log notifications seen {}; chaos {:?}, its calls {:?}; generations {}, crashes {}, answered twice {}, serves after: {}",
            self.flavor,
            self.seed,
            self.elapsed.as_secs_f64(),
            self.load(),
            self.hooks_continued,
            self.notifications_in_sent,
            self.notifications_in_dropped,
            self.notifications_out_seen,
            self.chaos,
            self.chaos_calls,
            self.generations,
            self.crashes,
            self.answered_twice,
            self.serves_after
        )
    }
}

/// The outcome of one call.
enum Outcome {
    Ok(Value),
    Err(RpcError),
    Hung,
}

/// One call with [`HUNG_BOUND`]; never panics.
async fn call(node: &Node, method: &str, params: &Value) -> Outcome {
    let n = CALL_ID.fetch_add(1, Ordering::Relaxed);
    let req = json!({"jsonrpc": "2.0", "id": format!("soak:{method}#{n}"), "method": method, "params": params});
    match tokio::time::timeout(HUNG_BOUND, node.try_call_raw(req.to_string().as_bytes())).await {
        Err(_) => Outcome::Hung,
        // The socket closed or sent garbage: an unknown kind.
        Ok(Err(e)) => Outcome::Err(RpcError {
            error: json!({"message": format!("transport: {e:#}")}),
        }),
        Ok(Ok(v)) => match v.get("error") {
            Some(e) => Outcome::Err(RpcError { error: e.clone() }),
            None => Outcome::Ok(v.get("result").cloned().unwrap_or(Value::Null)),
        },
    }
}

fn count(t: &Mutex<Tally>, o: &Outcome, known: &[&str]) {
    let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
    t.sent += 1;
    match o {
        Outcome::Ok(_) => t.ok += 1,
        Outcome::Err(e) => *t.errors.entry(error_kind(e, known)).or_default() += 1,
        Outcome::Hung => t.hung += 1,
    }
}

/// A closed-loop caller of `calls` (in turn) until `stop`; `on_ok` sees
/// each result.
async fn caller(
    node: Arc<Node>,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    calls: Vec<(String, Value)>,
    pause: Duration,
    on_ok: impl Fn(&Value),
) {
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let (method, params) = &calls[i % calls.len()];
        i += 1;
        let o = call(&node, method, params).await;
        if let Outcome::Ok(v) = &o {
            on_ok(v);
        }
        count(&tally, &o, LOAD_ERROR_KINDS);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

/// The plugin under test and how to make versions of it.
struct Subject {
    flavor: Flavor,
    path: PathBuf,
    version: u64,
}

const HOOK: &str = "peer_connected";
const NOTE: &str = "soak-note";

impl Subject {
    fn native_config(version: &str, extra: Value) -> Value {
        let mut c = json!({
            "version": version,
            "hooks": [HOOK],
            "hook_delay_ms": 5,
            "subscriptions": ["connect"],
        });
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        c
    }

    /// The next good version's bytes.
    fn next_version(&mut self) -> Vec<u8> {
        self.version += 1;
        let v = format!("v{}", self.version % 10_000_000);
        match self.flavor {
            Flavor::Native => testplugin_text(&Self::native_config(&v, json!({}))).into_bytes(),
            Flavor::Wasm => testguest_version(&v),
        }
    }

    /// A new good version, renamed into place.
    fn write_atomic(&mut self) {
        let bytes = self.next_version();
        match self.flavor {
            Flavor::Native => {
                let tmp = self.path.with_extension("tmp~");
                if std::fs::write(&tmp, &bytes).is_ok() {
                    crate::make_executable(&tmp);
                }
                std::fs::rename(&tmp, &self.path).expect("rename into place");
            }
            Flavor::Wasm => write_atomically(&self.path, &bytes),
        }
    }

    /// A new good version, written over the old file (truncate, write),
    /// as some editors save.
    fn write_in_place(&mut self) {
        let bytes = self.next_version();
        std::fs::write(&self.path, bytes).expect("write in place");
    }

    /// A native version that exits in `getmanifest` or `init`.
    fn write_crashing(&mut self, at: &str) {
        write_testplugin(
            &self.path,
            &Self::native_config("bad", json!({"crash_at": at})),
        );
    }

    /// A wasm module that traps at `at` ("getmanifest" or "init").
    fn write_trapping(&mut self, at: &str) {
        self.version += 1;
        let v = match at {
            "getmanifest" => format!("tgm{}", self.version % 10_000),
            _ => format!("tin{}", self.version % 10_000),
        };
        write_atomically(&self.path, &testguest_version(&v));
    }

    /// A wasm module cut in half: it does not compile.
    fn write_broken(&mut self) {
        let bytes = self.next_version();
        write_atomically(&self.path, &bytes[..bytes.len() / 2]);
    }

    fn prefix(&self) -> &'static str {
        match self.flavor {
            Flavor::Native => "tp",
            Flavor::Wasm => "tg",
        }
    }
}

/// Starts a node managing a fresh plugin of `flavor` in `dir`.
async fn start_node(flavor: Flavor, dir: &Path) -> (Arc<Node>, Subject) {
    let file = match flavor {
        Flavor::Native => "p.py",
        Flavor::Wasm => "g.wasm",
    };
    let mut subject = Subject {
        flavor,
        path: dir.join(file),
        version: 0,
    };
    subject.write_atomic();
    let node = NodeBuilder::new()
        .launch_dir(dir)
        .arg(format!("--autoreload-plugin={file}"))
        .arg("--autoreload-grace-ms=300")
        // The module caches legitimately grow to their bounds (in memory:
        // compiled code, and one memfd per module for its memory image;
        // the disk write of each new module: a thread at nice 19 holding
        // it until it is written, which a loaded machine delays): the
        // soak looks for what leaks per reload, so it runs without them
        // (tests/tests/e2e/wasm_cache.rs tests the caches).
        .arg("--autoreload-wasm-memory-cache-mb=0")
        .arg("--autoreload-wasm-cache-dir=off")
        .standin_only()
        .start()
        .await
        .expect("the node starts")
        .expect("the soak runs on the stand-in");
    (Arc::new(node), subject)
}

/// The first plugin's status.
async fn status(node: &Node) -> Value {
    node.ok("autoreload-status", json!({})).await["plugins"][0].clone()
}

fn generation(s: &Value) -> u64 {
    s["generation"].as_u64().unwrap_or(0)
}

/// Waits until a generation after `after` serves. A crash loop (the chaos
/// can crash the plugin five times in 30 s) is ended with
/// `autoreload-restart`, as a developer would.
async fn serving_after(node: &Node, after: u64, chaos: &mut BTreeMap<&'static str, u64>) -> Value {
    let start = Instant::now();
    loop {
        let s = status(node).await;
        if s["state"] == "serving" && generation(&s) > after {
            return s;
        }
        if s["state"] == "down"
            && s["down_reason"]
                .as_str()
                .is_some_and(|r| r.contains("crash loop"))
        {
            *chaos.entry("restart after a crash loop").or_default() += 1;
            // Its answer (or error) is not what is measured here.
            let _ = call(node, "autoreload-restart", &json!({})).await;
        }
        assert!(
            start.elapsed() < crate::BOUND,
            "the plugin did not serve again within {:?}: {s:#}",
            crate::BOUND
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Unusual (warning) log lines containing `needle`.
async fn count_log(node: &Node, level: &str, needle: &str) -> u64 {
    let v = node.ok("getlog", json!({"level": level})).await;
    v["log"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["log"].as_str().is_some_and(|l| l.contains(needle)))
                .count() as u64
        })
        .unwrap_or(0)
}

/// One chaos action, then waits until the plugin serves again.
async fn chaos_step(
    node: &Node,
    subject: &mut Subject,
    rng: &mut Rng,
    chaos: &mut BTreeMap<&'static str, u64>,
    calls: &Mutex<Tally>,
) {
    let before = generation(&status(node).await);
    let p = subject.prefix();
    let action: &'static str = match (subject.flavor, rng.range(0, 7)) {
        (_, 0) => "new version, renamed into place",
        (_, 1) => "new version, written in place",
        (_, 2) => "autoreload-restart",
        (Flavor::Native, 3) => "version crashing in getmanifest, then a good one",
        (Flavor::Native, 4) => "version crashing in init, then a good one",
        (Flavor::Native, 5) => "crash mid-request",
        (Flavor::Native, _) => "crash halfway through a response",
        (Flavor::Wasm, 3) => "module that does not compile, then a good one",
        (Flavor::Wasm, 4) => "module trapping before answering getmanifest, then a good one",
        (Flavor::Wasm, 5) => "module trapping in init, then a good one",
        (Flavor::Wasm, _) => "trap mid-request",
    };
    *chaos.entry(action).or_default() += 1;
    match action {
        "new version, renamed into place" => subject.write_atomic(),
        "new version, written in place" => subject.write_in_place(),
        "autoreload-restart" => {
            let o = call(node, "autoreload-restart", &json!({})).await;
            count(calls, &o, CHAOS_ERROR_KINDS);
        }
        "version crashing in getmanifest, then a good one"
        | "version crashing in init, then a good one"
        | "module that does not compile, then a good one"
        | "module trapping before answering getmanifest, then a good one"
        | "module trapping in init, then a good one" => {
            // The old version keeps serving a new one that fails to start
            // beside it, and comes back after one that fails in init (which
            // runs once the old one is gone): wait for either.
            let refused = |node| async move {
                count_log(node, "unusual", "new version not started").await
                    + count_log(node, "unusual", "Bringing back the version").await
            };
            let failed = refused(node).await;
            match action {
                "version crashing in getmanifest, then a good one" => {
                    subject.write_crashing("getmanifest")
                }
                "version crashing in init, then a good one" => subject.write_crashing("init"),
                "module that does not compile, then a good one" => subject.write_broken(),
                a if a.contains("getmanifest") => subject.write_trapping("getmanifest"),
                _ => subject.write_trapping("init"),
            }
            let start = Instant::now();
            while refused(node).await <= failed {
                assert!(
                    start.elapsed() < crate::BOUND,
                    "the broken version was never refused"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            subject.write_atomic();
        }
        "crash mid-request" => {
            let o = call(node, &format!("{p}-crash"), &json!({})).await;
            count(calls, &o, CHAOS_ERROR_KINDS);
        }
        "crash halfway through a response" => {
            let o = call(node, &format!("{p}-crash-half"), &json!({})).await;
            count(calls, &o, CHAOS_ERROR_KINDS);
        }
        _ => {
            let o = call(node, &format!("{p}-trap"), &json!({})).await;
            count(calls, &o, CHAOS_ERROR_KINDS);
        }
    }
    serving_after(node, before, chaos).await;
}

/// Runs one mixed soak through the stand-in. Prints its seed first.
pub async fn run(settings: &Settings) -> Report {
    eprintln!(
        "soak: {} for {:?}, seed {}",
        settings.flavor.name(),
        settings.duration,
        settings.seed
    );
    let dir = crate::tempdir();
    let (node, mut subject) = start_node(settings.flavor, dir.path()).await;
    let first = serving_after(&node, 0, &mut BTreeMap::new()).await;
    let p = subject.prefix();
    let stop = Arc::new(AtomicBool::new(false));
    let rpc = Arc::new(Mutex::new(Tally::default()));
    let hooks = Arc::new(Mutex::new(Tally::default()));
    let notes_in = Arc::new(Mutex::new(Tally::default()));
    let notes_out = Arc::new(Mutex::new(Tally::default()));
    let continued = Arc::new(Mutex::new(0u64));
    let sent_in = Arc::new(Mutex::new(0u64));
    let mut tasks = Vec::new();
    let rpc_calls: Vec<(String, Value)> = match settings.flavor {
        Flavor::Native => vec![
            ("tp-echo".into(), json!({"x": 1})),
            ("tp-sleep".into(), json!({"ms": 20})),
        ],
        Flavor::Wasm => vec![
            ("tg-echo".into(), json!({"x": 1})),
            ("tg-version".into(), json!({})),
        ],
    };
    for _ in 0..settings.callers {
        tasks.push(tokio::spawn(caller(
            node.clone(),
            stop.clone(),
            rpc.clone(),
            rpc_calls.clone(),
            Duration::ZERO,
            |_| {},
        )));
    }
    let c = continued.clone();
    tasks.push(tokio::spawn(caller(
        node.clone(),
        stop.clone(),
        hooks.clone(),
        vec![(
            "dev-hook".into(),
            json!({"hook": HOOK, "payload": {"peer": {"id": "02dd", "direction": "in", "addr": "127.0.0.1:9735", "features": ""}}}),
        )],
        Duration::from_millis(5),
        move |v| {
            let n = v["results"]
                .as_array()
                .map(|a| a.iter().filter(|r| r["result"] == "continue").count() as u64)
                .unwrap_or(0);
            *c.lock().unwrap_or_else(|e| e.into_inner()) += n;
        },
    )));
    let s = sent_in.clone();
    tasks.push(tokio::spawn(caller(
        node.clone(),
        stop.clone(),
        notes_in.clone(),
        vec![(
            "dev-notify".into(),
            json!({"topic": "connect", "payload": {"id": "02dd", "direction": "in", "address": {"type": "ipv4", "address": "127.0.0.1", "port": 9735}}}),
        )],
        Duration::from_millis(5),
        move |v| *s.lock().unwrap_or_else(|e| e.into_inner()) += v["sent"].as_u64().unwrap_or(0),
    )));
    tasks.push(tokio::spawn(caller(
        node.clone(),
        stop.clone(),
        notes_out.clone(),
        vec![(
            format!("{p}-log"),
            json!({"level": "info", "message": NOTE}),
        )],
        Duration::from_millis(5),
        |_| {},
    )));

    let mut rng = Rng::new(settings.seed);
    let mut chaos = BTreeMap::new();
    let chaos_calls = Mutex::new(Tally::default());
    let start = Instant::now();
    while start.elapsed() < settings.duration {
        let (lo, hi) = settings.chaos_pause_ms;
        tokio::time::sleep(Duration::from_millis(rng.range(lo, hi))).await;
        chaos_step(&node, &mut subject, &mut rng, &mut chaos, &chaos_calls).await;
    }
    stop.store(true, Ordering::SeqCst);
    let elapsed = start.elapsed();
    for t in tasks {
        // A caller panicking is a harness bug: surface it.
        t.await.expect("a load task");
    }

    let last = serving_after(&node, 0, &mut chaos).await;
    let after = call(&node, &format!("{p}-echo"), &json!({"after": true})).await;
    let answered_twice = node.ok("dev-counters", json!({})).await["unknown_id_responses"]
        .as_u64()
        .unwrap_or(u64::MAX);
    let notifications_out_seen = count_log(&node, "info", NOTE).await;
    let take = |t: &Mutex<Tally>| t.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let report = Report {
        flavor: settings.flavor.name(),
        seed: settings.seed,
        callers: settings.callers,
        elapsed,
        rpc: take(&rpc),
        hooks: take(&hooks),
        hooks_continued: *continued.lock().unwrap_or_else(|e| e.into_inner()),
        notifications_in: take(&notes_in),
        notifications_in_sent: *sent_in.lock().unwrap_or_else(|e| e.into_inner()),
        notifications_in_dropped: last["dropped_notifications"].as_u64().unwrap_or(0),
        notifications_out: take(&notes_out),
        notifications_out_seen,
        chaos,
        chaos_calls: take(&chaos_calls),
        generations: generation(&last) - generation(&first),
        crashes: last["crashes"].as_u64().unwrap_or(0),
        answered_twice,
        serves_after: matches!(after, Outcome::Ok(_)),
    };
    eprintln!("{}", report.summary());
    report
}

/// What the host process holds at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Open file descriptors (`/proc/PID/fd`).
    pub fds: u64,
    /// Threads (`/proc/PID/task`).
    pub threads: u64,
    /// Child processes, zombies included.
    pub children: u64,
    /// Resident memory, KiB (`VmRSS`).
    pub rss_kib: u64,
}

/// The children of `pid` (every thread's), zombies included.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    out
}

fn entries(path: &str) -> u64 {
    std::fs::read_dir(path)
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

/// What process `pid` holds now; `None` if it is gone.
pub fn usage(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(Usage {
        fds: entries(&format!("/proc/{pid}/fd")),
        threads: entries(&format!("/proc/{pid}/task")),
        children: children(pid).len() as u64,
        rss_kib,
    })
}

/// The host process: the node's child running cln-autoreload.
pub fn host_pid(node: &Node) -> Option<u32> {
    children(node.pid()?).into_iter().find(|c| {
        std::fs::read(format!("/proc/{c}/cmdline"))
            .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains("cln-autoreload"))
    })
}

/// How far the host may drift from its baseline after warm-up.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Extra open fds.
    pub fds: u64,
    /// Extra threads.
    pub threads: u64,
    /// Child processes, at most (absolute: the serving plugin).
    pub children: u64,
    /// Extra resident memory, KiB.
    pub rss_kib: u64,
}

impl Bounds {
    /// The bounds the soak states for `flavor` after `reloads` reloads:
    /// no fd and no thread may leak beyond a small slack for the runtime's
    /// pools, a native host has exactly its one plugin as a child and a
    /// wasm host none, and memory may grow by a few MiB plus 16 KiB a
    /// reload (a leak of a whole instance or module per reload is far more).
    pub fn stated(flavor: Flavor, reloads: u64) -> Bounds {
        Bounds {
            fds: 4,
            threads: 8,
            children: match flavor {
                Flavor::Native => 1,
                Flavor::Wasm => 0,
            },
            rss_kib: 16 * 1024 + 16 * reloads,
        }
    }

    /// What `u` breaks, compared with `base`.
    pub fn check(&self, base: &Usage, u: &Usage) -> Vec<String> {
        let mut p = Vec::new();
        if u.fds > base.fds + self.fds {
            p.push(format!("fds {} > {} + {}", u.fds, base.fds, self.fds));
        }
        if u.threads > base.threads + self.threads {
            p.push(format!(
                "threads {} > {} + {}",
                u.threads, base.threads, self.threads
            ));
        }
        if u.children > self.children {
            p.push(format!("children {} > {}", u.children, self.children));
        }
        if u.rss_kib > base.rss_kib + self.rss_kib {
            p.push(format!(
                "RSS {} KiB > {} + {} KiB",
                u.rss_kib, base.rss_kib, self.rss_kib
            ));
        }
        p
    }
}

/// The host's resources measured across many reloads.
#[derive(Debug, Clone)]
pub struct Hygiene {
    /// Which plugin.
    pub flavor: &'static str,
    /// Reloads done after the warm-up.
    pub reloads: u64,
    /// After the warm-up.
    pub baseline: Usage,
    /// `(reloads so far, usage)`, every `every` reloads.
    pub samples: Vec<(u64, Usage)>,
    /// The bounds checked.
    pub bounds: Bounds,
    /// The most seen of each, over all samples.
    pub peak: Usage,
}

impl Hygiene {
    /// Every sample that breaks the bounds, and why.
    pub fn problems(&self) -> Vec<String> {
        self.samples
            .iter()
            .flat_map(|(n, u)| {
                self.bounds
                    .check(&self.baseline, u)
                    .into_iter()
                    .map(move |p| format!("after {n} reloads: {p}"))
            })
            .collect()
    }
}

/// One reload (alternately a new file and `autoreload-restart`), waited
/// for until the new generation serves and the old one is gone.
async fn reload_settled(node: &Node, subject: &mut Subject, i: u64) {
    let before = generation(&status(node).await);
    if i.is_multiple_of(2) {
        subject.write_atomic();
    } else {
        let _ = node.ok("autoreload-restart", json!({})).await;
    }
    node.wait_status("the reload settled", |s| {
        s["state"] == "serving" && generation(s) > before && s["retiring"] == 0
    })
    .await;
}

/// Reloads the plugin `warmup` times, takes the host's usage as baseline,
/// then reloads it `reloads` times more, sampling every `every` reloads.
pub async fn hygiene(flavor: Flavor, warmup: u64, reloads: u64, every: u64) -> Hygiene {
    let dir = crate::tempdir();
    let (node, mut subject) = start_node(flavor, dir.path()).await;
    serving_after(&node, 0, &mut BTreeMap::new()).await;
    let pid = host_pid(&node).expect("the host process is the node's child");
    let measure = || usage(pid).expect("the host is running");
    for i in 0..warmup {
        reload_settled(&node, &mut subject, i).await;
    }
    let baseline = measure();
    let bounds = Bounds::stated(flavor, reloads);
    let mut samples = Vec::new();
    let mut peak = baseline;
    for i in 1..=reloads {
        reload_settled(&node, &mut subject, i).await;
        if i.is_multiple_of(every) || i == reloads {
            let u = measure();
            peak = Usage {
                fds: peak.fds.max(u.fds),
                threads: peak.threads.max(u.threads),
                children: peak.children.max(u.children),
                rss_kib: peak.rss_kib.max(u.rss_kib),
            };
            eprintln!("hygiene {}: after {i} reloads: {u:?}", flavor.name());
            samples.push((i, u));
        }
    }
    // The plugin still serves after all that.
    let p = subject.prefix();
    node.ok(&format!("{p}-echo"), json!({})).await;
    Hygiene {
        flavor: flavor.name(),
        reloads,
        baseline,
        samples,
        bounds,
        peak,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(e: Value) -> RpcError {
        RpcError { error: e }
    }

    #[test]
    fn errors_are_classified_by_their_kind_not_their_message() {
        // The message is for people and may be reworded: only the kind
        // counts, whatever the message says.
        let reloaded =
            err(json!({"code": -4, "message": "crashed? no", "data": {"kind": "reloaded"}}));
        assert_eq!(error_kind(&reloaded, LOAD_ERROR_KINDS), "reloaded");
        let failed = err(
            json!({"code": -4, "message": "reload of x failed: boom", "data": {"kind": "reload-failed"}}),
        );
        assert_eq!(error_kind(&failed, CHAOS_ERROR_KINDS), "reload-failed");
        assert_eq!(
            error_kind(&failed, LOAD_ERROR_KINDS),
            "unknown: [reload-failed] reload of x failed: boom"
        );
        let plain = err(json!({"code": -4, "message": "x was reloaded"}));
        assert_eq!(
            error_kind(&plain, LOAD_ERROR_KINDS),
            "unknown: x was reloaded"
        );
    }
}
