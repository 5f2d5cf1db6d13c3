//! Table tests of the supervisor: every phase a plugin can be in × every
//! event that can reach it, driven by hand (no process, file or clock),
//! each checked for what lightningd cannot survive (a request never
//! answered, one answered twice, an error answer to a hook); then the
//! awkward rows one by one, with what must happen.
//!
//! A [`Rig`] plays the loop and the plugin instances: it answers spawns,
//! records what each instance is sent, makes killed or closed instances
//! exit when told to settle, answers requests like a well-behaved plugin,
//! and fires timers in time order.

use super::plugin::ReloadMode;
use super::*;
use crate::backend::{Exit, InstanceEvent};
use crate::framing::Framer;
use crate::framing::{Frame, Message};
use crate::ids::{Epoch, Gen};
use crate::locate::Located;
use crate::locate::Source;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

const MANIFEST: &str = r#"{"options":[],"rpcmethods":[{"name":"echo","usage":"","description":"echoes"}],"hooks":[{"name":"peer_connected"},{"name":"db_write"}],"subscriptions":["shutdown","connect"],"dynamic":true}"#;

/// One instance as the rig sees it.
#[derive(Debug, Default)]
struct Fake {
    /// Requests it was sent and has not answered: id → method.
    asked: BTreeMap<String, String>,
    /// It was killed, terminated or its stdin closed: it exits on settle.
    ending: bool,
    /// It exited (the supervisor was told).
    exited: bool,
    /// How soon its module was to be compiled.
    urgency: Option<crate::backend::wasm::Urgency>,
}

/// The loop and the instances, by hand.
struct Rig {
    sup: Supervisor,
    now: Instant,
    fakes: BTreeMap<(PluginId, Gen), Fake>,
    timers: Vec<(Instant, PluginId, Epoch, Timer)>,
    shutdown_deadline: Option<Instant>,
    /// Requests lightningd sent and has had no answer to: id → method.
    waiting: BTreeMap<String, String>,
    /// Every id lightningd got an answer to, to catch a second answer.
    answered: BTreeSet<String>,
    /// Hook ids lightningd sent (an error answer to one aborts it).
    hooks: BTreeSet<String>,
    /// Log lines the host wrote.
    logs: Vec<String>,
    exited: bool,
    next_id: u64,
    /// Answer the next spawn of each plugin with this error.
    spawn_error: Option<SpawnError>,
    /// The plugin answers getmanifest with an error.
    broken: bool,
    /// The plugin answers init with an error saying this, as pyln-client
    /// does when its init handler raises.
    init_error: Option<&'static str>,
    /// Which file each generation was started from.
    sources: BTreeMap<Gen, super::Source>,
    /// File stamps, bumped by each save.
    saves: u64,
    /// The plugin declares state and answers the hand-over like a
    /// working one.
    keeps_state: bool,
    /// The state each generation restored: gen → state.
    restored: BTreeMap<Gen, Value>,
    /// The options lightningd's init gives.
    init_options: Value,
    /// The first plugin's file name: its name in `NAME::` option values.
    plugin_file: Option<String>,
    /// Which row of the table runs, for messages.
    row: String,
}

fn frame(v: Value) -> Frame {
    let mut f = Framer::new();
    f.push(v.to_string().as_bytes());
    f.push(b"\n\n");
    f.next_frame().expect("a frame")
}

fn message(v: Value) -> Message {
    match frame(v) {
        Frame::Message(m) => m,
        other => panic!("not a message: {other:?}"),
    }
}

impl Rig {
    /// A supervisor for plugins at `paths` (`.wasm` ones run as wasm).
    fn new(paths: &[&str]) -> Rig {
        let located = Located {
            paths: paths.iter().map(PathBuf::from).collect(),
            source: Source::Argv,
            notes: vec![],
            early: vec![],
        };
        let now = Instant::now();
        let config = Config {
            cwd: Some(PathBuf::from("/ld")),
            ..Config::default()
        };
        let mut rig = Rig {
            sup: Supervisor::new(config, Some(located), now, SystemTime::UNIX_EPOCH),
            now,
            fakes: BTreeMap::new(),
            timers: vec![],
            shutdown_deadline: None,
            waiting: BTreeMap::new(),
            answered: BTreeSet::new(),
            hooks: BTreeSet::new(),
            logs: vec![],
            exited: false,
            next_id: 0,
            spawn_error: None,
            broken: false,
            init_error: None,
            sources: BTreeMap::new(),
            saves: 0,
            keeps_state: false,
            restored: BTreeMap::new(),
            init_options: json!({}),
            row: String::new(),
            plugin_file: None,
        };
        // Warm start, named: the rig's plugin takes db_write, which a
        // value for all plugins leaves break-before-make.
        rig.plugin_file = paths.first().map(|p| p.rsplit('/').next().unwrap_or(p).to_string());
        rig.init_options = json!({"autoreload-overlap": [rig.named("warm")]});
        rig
    }

    /// A rig for one plugin of this kind.
    fn of(kind: Kind) -> Rig {
        let mut rig = Rig::new(&[kind.path]);
        rig.keeps_state = kind.keeps_state;
        let mode = match kind.mode {
            ReloadMode::Warm => "warm",
            ReloadMode::Overlap => "full",
            ReloadMode::Cold => "false",
        };
        rig.init_options = json!({"autoreload-overlap": [rig.named(mode)]});
        rig
    }

    /// `value` for this rig's plugin alone: `NAME::value`.
    fn named(&self, value: &str) -> String {
        let name = self.plugin_file.as_deref().unwrap_or("plugin");
        format!("{name}::{value}")
    }

    fn input(&mut self, input: Input) {
        self.sup.handle(self.now, input);
        self.drain();
    }

    /// Performs what the supervisor asked for, as the loop would.
    fn drain(&mut self) {
        while let Some(o) = self.sup.poll_output() {
            match o {
                Output::ToLightningd(bytes) => self.lightningd_gets(&bytes),
                Output::Spawn(Spawn {
                    plugin,
                    gen,
                    urgency,
                    source,
                    ..
                }) => {
                    self.sources.insert(gen, source);
                    let answer = match self.spawn_error.take() {
                        Some(error) => Input::SpawnFailed { plugin, gen, error },
                        None => {
                            let fake = Fake {
                                urgency: Some(urgency),
                                ..Fake::default()
                            };
                            self.fakes.insert((plugin, gen), fake);
                            Input::Spawned {
                                plugin,
                                gen,
                                pid: Some(1000 + gen.0 as u32),
                                file: None,
                            }
                        }
                    };
                    self.sup.handle(self.now, answer);
                }
                Output::Instance { plugin, gen, op } => {
                    let Some(f) = self.fakes.get_mut(&(plugin, gen)).filter(|f| !f.exited) else {
                        continue;
                    };
                    match op {
                        InstanceOp::Send(bytes) => {
                            let v: Value = serde_json::from_slice(&bytes).expect("json");
                            if let (Some(id), Some(m)) = (v.get("id"), v["method"].as_str()) {
                                f.asked.insert(id.to_string(), m.to_owned());
                            }
                            if v["method"] == "autoreload-restore-state" {
                                self.restored.insert(gen, v["params"]["state"].clone());
                            }
                        }
                        InstanceOp::CloseStdin | InstanceOp::Terminate | InstanceOp::Kill => {
                            f.ending = true
                        }
                    }
                }
                Output::Timer {
                    plugin,
                    epoch,
                    timer,
                    after,
                } => self.timers.push((self.now + after, plugin, epoch, timer)),
                Output::ShutdownDeadline(after) => self.shutdown_deadline = Some(self.now + after),
                Output::Status { id, entries } => {
                    let list: Vec<Value> = entries.into_iter().map(|(_, e)| e).collect();
                    self.lightningd_gets(&jsonrpc::response(&id, json!({ "plugins": list })));
                }
                Output::Exit => self.exited = true,
                Output::Served { .. }
                | Output::WatchFiles(_)
                | Output::StopWatching
                | Output::SetUpBuilds { .. }
                | Output::FindWrapper { .. }
                | Output::RestartThrough { .. } => {}
            }
        }
    }

    fn lightningd_gets(&mut self, bytes: &[u8]) {
        let v: Value = serde_json::from_slice(bytes).expect("the host writes JSON");
        if v["method"] == "log" {
            self.logs
                .push(v["params"]["message"].as_str().unwrap_or_default().into());
            return;
        }
        let Some(id) = v.get("id").map(Value::to_string) else {
            return;
        };
        assert!(
            self.answered.insert(id.clone()),
            "{}: {id} answered twice: {v}\nlog: {:#?}",
            self.row,
            self.logs
        );
        if self.hooks.contains(&id) {
            assert!(
                v.get("error").is_none(),
                "{}: an error answer to a hook makes lightningd abort: {v}",
                self.row
            );
        }
        self.waiting.remove(&id);
    }

    /// lightningd sends a request; its id.
    fn request(&mut self, method: &str, params: Value) -> String {
        self.send_request(method, params, false)
    }

    fn hook(&mut self, name: &str, params: Value) -> String {
        self.send_request(name, params, true)
    }

    /// lightningd sends a request (a hook, which must never be answered
    /// with an error, if `hook`); its id.
    fn send_request(&mut self, method: &str, params: Value, hook: bool) -> String {
        self.next_id += 1;
        let id = format!("\"ld:{method}#{}\"", self.next_id);
        if hook {
            self.hooks.insert(id.clone());
        }
        self.waiting.insert(id.clone(), method.to_owned());
        let raw: Value = serde_json::from_str(&id).expect("id");
        self.input(Input::Lightningd(frame(
            json!({"jsonrpc": "2.0", "id": raw, "method": method, "params": params}),
        )));
        id
    }

    /// Instance `gen` of plugin 0 reports `event`.
    fn reports(&mut self, gen: Gen, event: InstanceEvent) {
        self.input(Input::Instance {
            plugin: PluginId(0),
            gen,
            event,
        });
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.input(Input::Lightningd(frame(
            json!({"jsonrpc": "2.0", "method": method, "params": params}),
        )));
    }

    /// lightningd's getmanifest (the plugins start).
    fn getmanifest(&mut self) {
        self.request("getmanifest", json!({"allow-deprecated-apis": false}));
    }

    /// lightningd's init.
    fn init(&mut self) {
        self.request(
            "init",
            json!({"options": self.init_options.clone(), "configuration": {"lightning-dir": "/ld", "rpc-file": "lightning-rpc"}}),
        );
    }

    /// The current generation of plugin 0.
    fn gen(&self) -> Gen {
        self.sup.plugins[PluginId(0)]
            .phase
            .generation()
            .map_or(Gen(0), |g| g.number)
    }

    fn phase(&self) -> &'static str {
        self.sup.plugins[PluginId(0)].phase.name()
    }

    /// Instance `gen` of plugin 0 answers what it was asked for with
    /// `method` (the first such request), like a working plugin would.
    fn answer(&mut self, gen: Gen, method: &str) -> bool {
        let p = PluginId(0);
        let Some(f) = self.fakes.get_mut(&(p, gen)) else {
            return false;
        };
        let Some(id) = f
            .asked
            .iter()
            .find(|(_, m)| *m == method)
            .map(|(id, _)| id.clone())
        else {
            return false;
        };
        f.asked.remove(&id);
        let id: Value = serde_json::from_str(&id).expect("id");
        let answer = match method {
            "getmanifest" if self.broken => {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -1, "message": "broken"}})
            }
            "init" if self.init_error.is_some() => {
                let message = format!(
                    "Error while processing init: {}",
                    self.init_error.unwrap_or_default()
                );
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32600, "message": message}})
            }
            "getmanifest" => {
                let mut m = serde_json::from_str::<Value>(MANIFEST).expect("manifest");
                if self.keeps_state {
                    m["autoreload"] = json!({"state": true});
                }
                json!({"jsonrpc": "2.0", "id": id, "result": m})
            }
            "autoreload-save-state" => {
                json!({"jsonrpc": "2.0", "id": id, "result": {"state": {"saved_by": gen}}})
            }
            "peer_connected" | "db_write" => {
                json!({"jsonrpc": "2.0", "id": id, "result": {"result": "continue"}})
            }
            _ => json!({"jsonrpc": "2.0", "id": id, "result": {"method": method}}),
        };
        self.reports(gen, InstanceEvent::Message(message(answer)));
        true
    }

    /// Instance `gen` of plugin 0 ends.
    fn exit(&mut self, gen: Gen, how: &str) {
        let p = PluginId(0);
        if let Some(f) = self.fakes.get_mut(&(p, gen)) {
            if f.exited {
                return;
            }
            f.exited = true;
        }
        self.reports(gen, InstanceEvent::Exited(Exit::plain(how)));
    }

    /// The plugin file is saved.
    fn save(&mut self) {
        self.saves += 1;
        let file = FileStamp::test(self.saves);
        self.input(Input::Changed {
            plugin: PluginId(0),
            file,
        });
    }

    /// Fires the earliest timer due by `until`, if any.
    fn fire_one(&mut self, until: Instant) -> bool {
        self.timers.sort_by_key(|t| t.0);
        match self.timers.first() {
            Some(&(due, plugin, epoch, timer)) if due <= until => {
                self.timers.remove(0);
                self.now = self.now.max(due);
                self.input(Input::Timer {
                    plugin,
                    epoch,
                    timer,
                });
                true
            }
            _ => false,
        }
    }

    /// Lets everything run its course: instances told to end exit,
    /// working instances answer what they were asked, timers fire.
    fn settle(&mut self) {
        for _ in 0..500 {
            let ending: Vec<Gen> = self
                .fakes
                .iter()
                .filter(|(_, f)| f.ending && !f.exited)
                .map(|(&(_, g), _)| g)
                .collect();
            if let Some(&g) = ending.first() {
                self.exit(g, "exited with status 0");
                continue;
            }
            let asked: Vec<(Gen, String)> = self
                .fakes
                .iter()
                .filter(|(_, f)| !f.exited)
                .flat_map(|(&(_, g), f)| f.asked.values().map(move |m| (g, m.clone())))
                .collect();
            if let Some((g, m)) = asked.first().cloned() {
                self.answer(g, &m);
                continue;
            }
            if self.fire_one(self.now + Duration::from_secs(120)) {
                continue;
            }
            if let Some(d) = self.shutdown_deadline.take() {
                if !self.exited {
                    self.now = self.now.max(d);
                    self.input(Input::ShutdownDeadline);
                }
                continue;
            }
            return;
        }
        panic!("did not settle: {:#?}", self.logs);
    }

    /// Instances told to end exit (and nothing else happens).
    fn settle_exits(&mut self) {
        loop {
            let ending = self
                .fakes
                .iter()
                .find(|(_, f)| f.ending && !f.exited)
                .map(|(&(_, g), _)| g);
            match ending {
                Some(g) => self.exit(g, "exited with status 0"),
                None => return,
            }
        }
    }

    /// Starts the host and brings plugin 0 to serving.
    fn boot(&mut self) {
        self.getmanifest();
        let g = self.gen();
        assert!(self.answer(g, "getmanifest"), "{:#?}", self.logs);
        self.init();
        assert!(self.answer(g, "init"), "{:#?}", self.logs);
        assert_eq!(self.phase(), "serving", "{:#?}", self.logs);
    }

    /// Every request lightningd sent was answered.
    fn nothing_waits(&self) {
        assert!(
            self.waiting.is_empty(),
            "unanswered: {:?} (phase {}) log: {:#?}",
            self.waiting,
            self.phase(),
            self.logs
        );
    }

    /// Plugin 0 serving, a save starts a new version that answers
    /// getmanifest and init: the old and the new generation.
    fn reload_to_init(&mut self) -> (Gen, Gen) {
        let old = self.gen();
        self.save();
        let next = *spawned(self).last().expect("next");
        self.answer(next, "getmanifest");
        self.answer(next, "init");
        (old, next)
    }

    /// Instance `gen` will not answer what it was asked with `method`.
    fn forget(&mut self, gen: Gen, method: &str) {
        if let Some(f) = self.fakes.get_mut(&(PluginId(0), gen)) {
            f.asked.retain(|_, m| m != method);
        }
    }

    /// Plugin 0 serving, a save starts a new version that says `line` on
    /// stderr and exits: the old and the new generation.
    fn reload_failing(&mut self, line: &str) -> (Gen, Gen) {
        let old = self.gen();
        self.save();
        let next = *spawned(self).last().expect("next");
        self.reports(next, InstanceEvent::Stderr(line.into()));
        self.exit(next, "exited with status 1");
        (old, next)
    }

    fn logged(&self, needle: &str) -> bool {
        self.logs.iter().any(|l| l.contains(needle))
    }
}

/// The phases a plugin is brought to before an event, by name.
const SETUPS: &[&str] = &[
    "starting: getmanifest sent",
    "starting: waiting for lightningd's init",
    "starting: init sent",
    "serving",
    "serving, a call in flight",
    "reloading (draining or swapping), a call in flight",
    "reloading (stopping or swapping)",
    "reloading, the new version answered init, a call in flight",
    "reloading, the new version answered init",
    "reloading, the new version answered getmanifest, a call in flight",
    "reloading, the new version answered getmanifest",
    "reloading, the old version failed to come back after a broken init",
    "down after failing to start",
    "down, backing off after two crashes",
    "down after a crash loop",
];

/// The events that can reach it.
const EVENTS: &[&str] = &[
    "file saved",
    "current generation exits",
    "newest generation exits",
    "autoreload-restart",
    "shutdown",
    "rpc call",
    "hook call",
    "db_write",
    "timers fire",
    "late init answer from an older generation",
    "garbage on stdout",
];

fn setup(rig: &mut Rig, name: &str) {
    match name {
        "starting: getmanifest sent" => rig.getmanifest(),
        "starting: waiting for lightningd's init" => {
            rig.getmanifest();
            let g = rig.gen();
            rig.answer(g, "getmanifest");
        }
        "starting: init sent" => {
            rig.getmanifest();
            let g = rig.gen();
            rig.answer(g, "getmanifest");
            rig.init();
        }
        "serving" => rig.boot(),
        "serving, a call in flight" => {
            rig.boot();
            rig.request("echo", json!({}));
        }
        "reloading (draining or swapping), a call in flight" => {
            rig.boot();
            rig.request("echo", json!({}));
            rig.save();
        }
        "reloading (stopping or swapping)" => {
            rig.boot();
            rig.save();
        }
        // With state: the old one drains its call (new calls wait), or is
        // asked for its state. Without: the old one retires.
        "reloading, the new version answered init, a call in flight" => {
            rig.boot();
            rig.request("echo", json!({}));
            rig.save();
            let next = *spawned(rig).last().expect("a generation");
            rig.answer(next, "getmanifest");
            rig.answer(next, "init");
        }
        "reloading, the new version answered init" => {
            rig.boot();
            rig.save();
            let next = *spawned(rig).last().expect("a generation");
            rig.answer(next, "getmanifest");
            rig.answer(next, "init");
        }
        // Warm: the old one drains (new calls wait), or stops, while the
        // new one waits for init.
        "reloading, the new version answered getmanifest, a call in flight" => {
            rig.boot();
            rig.request("echo", json!({}));
            rig.save();
            let next = *spawned(rig).last().expect("a generation");
            rig.answer(next, "getmanifest");
        }
        "reloading, the new version answered getmanifest" => {
            rig.boot();
            rig.save();
            let next = *spawned(rig).last().expect("a generation");
            rig.answer(next, "getmanifest");
        }
        // The new version fails init once the old one is gone (warm,
        // cold), and the version brought back is starting.
        "reloading, the old version failed to come back after a broken init" => {
            rig.boot();
            rig.init_error = Some("broken");
            rig.save();
            for _ in 0..3 {
                let next = *spawned(rig).last().expect("a generation");
                rig.answer(next, "getmanifest");
                rig.settle_exits();
                rig.answer(next, "init");
                rig.answer(next, "autoreload-save-state");
                let old = rig.gen();
                rig.answer(old, "autoreload-save-state");
            }
            rig.init_error = None;
        }
        "down after failing to start" => {
            rig.broken = true;
            rig.getmanifest();
            let g = rig.gen();
            rig.answer(g, "getmanifest");
            rig.init();
            assert_eq!(rig.phase(), "down");
            rig.broken = false;
        }
        "down, backing off after two crashes" => {
            rig.boot();
            for _ in 0..2 {
                let g = rig.gen();
                rig.exit(g, "exited with status 1");
                if rig.phase() == "starting" {
                    let g = rig.gen();
                    rig.answer(g, "getmanifest");
                    rig.answer(g, "init");
                }
            }
            assert_eq!(rig.phase(), "down", "{:#?}", rig.logs);
        }
        "down after a crash loop" => {
            rig.boot();
            for _ in 0..5 {
                let g = rig.gen();
                rig.exit(g, "exited with status 1");
                // Restart at once or after the back-off, and serve again.
                rig.fire_one(rig.now + Duration::from_secs(5));
                if rig.phase() == "starting" {
                    let g = rig.gen();
                    rig.answer(g, "getmanifest");
                    rig.answer(g, "init");
                }
            }
            assert!(rig.logged("crash loop"), "{:#?}", rig.logs);
        }
        other => panic!("no setup {other}"),
    }
}

fn event(rig: &mut Rig, name: &str) {
    // lightningd calls a plugin's methods and hooks only once it has the
    // manifest that registers them.
    let registered = !matches!(
        rig.sup.startup,
        Startup::NotStarted | Startup::Manifest { .. }
    );
    if matches!(
        name,
        "rpc call" | "hook call" | "db_write" | "autoreload-restart"
    ) && !registered
    {
        return;
    }
    if matches!(name, "hook call" | "db_write") && rig.sup.router.hook("db_write").is_empty() {
        return;
    }
    match name {
        "file saved" => rig.save(),
        "current generation exits" => {
            let g = rig.gen();
            rig.exit(g, "exited with status 3");
        }
        "newest generation exits" => {
            let newest = rig.fakes.keys().map(|&(_, g)| g).max().unwrap_or(Gen(0));
            rig.exit(newest, "exited with status 4");
        }
        "autoreload-restart" => {
            rig.request("autoreload-restart", json!({}));
        }
        "shutdown" => rig.notify("shutdown", json!({})),
        "rpc call" => {
            rig.request("echo", json!({}));
        }
        "hook call" => {
            rig.hook("peer_connected", json!({"peer": {"id": "02aa"}}));
        }
        "db_write" => {
            rig.hook("db_write", json!({"data_version": 1, "writes": []}));
        }
        "timers fire" => {
            let until = rig.now + Duration::from_secs(61);
            while rig.fire_one(until) {}
        }
        "late init answer from an older generation" => {
            let g = rig.gen();
            let old = Gen(g.0.saturating_sub(1));
            rig.reports(
                old,
                InstanceEvent::Message(message(
                    json!({"jsonrpc": "2.0", "id": format!("autoreload:init#{old}"), "result": {}}),
                )),
            );
        }
        "garbage on stdout" => {
            let g = rig.gen();
            rig.reports(
                g,
                InstanceEvent::Garbage {
                    bytes: Bytes::from_static(b"hello"),
                    reason: "not JSON".into(),
                },
            );
        }
        other => panic!("no event {other}"),
    }
}

/// Every phase × every event, native and wasm: nothing lightningd sent
/// is answered twice or with an error to a hook, and once everything has
/// run its course (instances exit or answer, timers fire) nothing is left
/// unanswered and the plugin serves again (or, after a shutdown, the host
/// exits).
/// A kind of plugin the table runs for.
#[derive(Debug, Clone, Copy)]
struct Kind {
    path: &'static str,
    mode: ReloadMode,
    keeps_state: bool,
}

impl Kind {
    const fn native(mode: ReloadMode, keeps_state: bool) -> Kind {
        Kind {
            path: "/p/plugin.py",
            mode,
            keeps_state,
        }
    }

    const fn wasm(mode: ReloadMode, keeps_state: bool) -> Kind {
        Kind {
            path: "/p/plugin.wasm",
            mode,
            keeps_state,
        }
    }
}

const KINDS: &[Kind] = {
    use ReloadMode::{Cold, Overlap, Warm};
    &[
        Kind::native(Warm, false),
        Kind::native(Overlap, false),
        Kind::native(Cold, false),
        Kind::wasm(Warm, false),
        Kind::wasm(Overlap, false),
        Kind::wasm(Cold, false),
        Kind::native(Warm, true),
        Kind::native(Overlap, true),
        Kind::native(Cold, true),
        Kind::wasm(Warm, true),
        Kind::wasm(Overlap, true),
        Kind::wasm(Cold, true),
    ]
};

#[test]
fn every_phase_times_every_event_leaves_nothing_unanswered() {
    let mut rows = 0;
    for kind in KINDS {
        for s in SETUPS {
            for e in EVENTS {
                let mut rig = Rig::of(*kind);
                rig.row = format!("{kind:?}: {s} × {e}");
                setup(&mut rig, s);
                event(&mut rig, e);
                // A plugin down after failing stays down until a save.
                let down = rig.phase() == "down" && rig.sup.plugins[PluginId(0)].retry.is_none();
                if down && !rig.sup.shutting_down() {
                    rig.save();
                }
                rig.settle();
                let what = format!("{kind:?}: {s} × {e}");
                if rig.sup.shutting_down() {
                    assert!(rig.exited, "{what}: did not exit. log: {:#?}", rig.logs);
                    // lightningd shutting down waits for no handshake.
                    rig.waiting
                        .retain(|_, m| !matches!(m.as_str(), "getmanifest" | "init"));
                } else {
                    // lightningd sends init once it has the manifest.
                    if matches!(rig.sup.startup, Startup::WaitInit) {
                        rig.init();
                        rig.settle();
                    }
                    assert_eq!(rig.phase(), "serving", "{what}: log {:#?}", rig.logs);
                    // And it still answers.
                    rig.request("echo", json!({}));
                    rig.settle();
                }
                assert!(
                    rig.waiting.is_empty(),
                    "{what}: unanswered {:?}, log {:#?}",
                    rig.waiting,
                    rig.logs
                );
                rows += 1;
            }
        }
    }
    assert_eq!(rows, KINDS.len() * SETUPS.len() * EVENTS.len());
}

/// The generations spawned so far for plugin 0.
fn spawned(rig: &Rig) -> Vec<Gen> {
    rig.fakes.keys().map(|&(_, g)| g).collect()
}

#[test]
fn a_save_during_a_young_start_lets_it_finish_then_reloads_once() {
    let mut rig = Rig::new(&["/p/plugin.py"]);
    rig.boot();
    let first = rig.gen();
    rig.exit(first, "exited with status 1"); // restarts at once
    let starting = rig.gen();
    assert_eq!(rig.phase(), "starting");
    rig.save();
    rig.save();
    assert_eq!(spawned(&rig).len(), 2, "the start is not replaced");
    rig.answer(starting, "getmanifest");
    rig.answer(starting, "init");
    // It served, then the save goes ahead: one more generation, not two,
    // started beside it.
    assert_eq!(spawned(&rig).len(), 3, "{:#?}", rig.logs);
    assert_eq!(rig.phase(), "swapping");
    rig.settle();
    assert_eq!(rig.phase(), "serving");
    assert_eq!(spawned(&rig).len(), 3, "{:#?}", rig.logs);
    rig.nothing_waits();
}

#[test]
fn a_save_that_changed_nothing_during_a_start_does_not_reload() {
    let mut rig = Rig::new(&["/p/plugin.py"]);
    rig.boot();
    rig.exit(rig.gen(), "exited with status 1");
    let starting = rig.gen();
    // A chmod: the file as the start saw it.
    rig.input(Input::Changed {
        plugin: PluginId(0),
        file: None,
    });
    rig.answer(starting, "getmanifest");
    rig.answer(starting, "init");
    rig.settle();
    assert_eq!(spawned(&rig).len(), 2, "{:#?}", rig.logs);
}

#[test]
fn a_crash_while_draining_answers_the_call_and_restarts_at_once() {
    let mut rig = Rig::of(Kind::native(ReloadMode::Cold, false));
    rig.boot();
    let call = rig.request("echo", json!({}));
    rig.save();
    assert_eq!(rig.phase(), "draining");
    let g = rig.gen();
    rig.exit(g, "exited with status 9");
    assert!(rig.answered.contains(&call));
    assert_eq!(rig.phase(), "starting", "restarted without waiting");
    rig.settle();
    assert_eq!(rig.phase(), "serving");
    rig.nothing_waits();
}

#[test]
fn the_error_a_crash_gives_says_crashed_in_its_data() {
    let mut rig = Rig::new(&["/p/plugin.py"]);
    rig.boot();
    rig.request("echo", json!({}));
    // Catch the answer.
    let g = rig.gen();
    rig.sup.handle(
        rig.now,
        Input::Instance {
            plugin: PluginId(0),
            gen: g,
            event: InstanceEvent::Exited(Exit::plain("exited with status 7")),
        },
    );
    let mut kinds = vec![];
    while let Some(o) = rig.sup.poll_output() {
        if let Output::ToLightningd(b) = o {
            let v: Value = serde_json::from_slice(&b).expect("json");
            if let Some(k) = v.pointer("/error/data/kind") {
                kinds.push((v["error"]["code"].clone(), k.clone()));
            }
        }
    }
    assert_eq!(kinds, vec![(json!(-4), json!("crashed"))]);
}

#[test]
fn a_second_restart_during_a_swap_replaces_the_next_one() {
    let mut rig = Rig::new(&["/p/plugin.wasm"]);
    rig.boot();
    let serving = rig.gen();
    let first = rig.request("autoreload-restart", json!({}));
    assert_eq!(rig.phase(), "swapping");
    let next = *spawned(&rig).last().expect("next");
    rig.save();
    assert!(
        rig.fakes[&(PluginId(0), next)].ending,
        "the next one is stopped"
    );
    let newest = *spawned(&rig).last().expect("newest");
    assert!(newest > next);
    assert_eq!(rig.gen(), serving, "the serving one serves on");
    rig.settle();
    assert_eq!(rig.phase(), "serving");
    assert_eq!(rig.gen(), newest);
    assert!(rig.answered.contains(&first), "the restart is answered");
    rig.nothing_waits();
}

#[test]
fn an_init_answer_from_a_retired_generation_changes_nothing() {
    let mut rig = Rig::new(&["/p/plugin.wasm"]);
    rig.boot();
    let old = rig.gen();
    rig.save();
    rig.settle();
    let now = rig.gen();
    assert!(now > old);
    let epoch = rig.sup.plugins[PluginId(0)].epoch;
    event(&mut rig, "late init answer from an older generation");
    assert_eq!((rig.gen(), rig.phase()), (now, "serving"));
    assert_eq!(rig.sup.plugins[PluginId(0)].epoch, epoch);
}

#[test]
fn shutdown_during_a_back_off_starts_nothing_and_exits() {
    let mut rig = Rig::new(&["/p/plugin.py"]);
    setup(&mut rig, "down, backing off after two crashes");
    let before = spawned(&rig).len();
    rig.notify("shutdown", json!({}));
    assert!(rig.exited, "nothing runs: it exits at once");
    let until = rig.now + Duration::from_secs(60);
    while rig.fire_one(until) {}
    assert_eq!(spawned(&rig).len(), before, "the retry did not start one");
}

#[test]
fn a_db_write_waits_for_a_version_that_can_answer_it() {
    let mut rig = Rig::new(&["/p/plugin.py"]);
    setup(&mut rig, "down after a crash loop");
    let write = rig.hook("db_write", json!({"data_version": 1, "writes": []}));
    assert!(
        !rig.answered.contains(&write),
        "never answered on its behalf"
    );
    assert!(rig.logged("lightningd waits with it"), "{:#?}", rig.logs);
    rig.save();
    rig.settle();
    assert!(rig.answered.contains(&write));
}

#[test]
fn a_busy_file_is_tried_again_shortly() {
    let mut rig = Rig::new(&["/p/plugin.py"]);
    rig.spawn_error = Some(SpawnError::Busy);
    rig.getmanifest();
    assert_eq!(rig.phase(), "down");
    assert!(spawned(&rig).is_empty());
    rig.settle();
    rig.init();
    rig.settle();
    assert_eq!(rig.phase(), "serving", "{:#?}", rig.logs);
    rig.nothing_waits();
}

#[test]
fn a_missing_file_says_so_and_the_handshake_goes_on() {
    let mut rig = Rig::new(&["/p/plugin.py"]);
    rig.spawn_error = Some(SpawnError::NotFound);
    rig.getmanifest();
    assert_eq!(rig.phase(), "down");
    assert!(rig.logged("does not exist"), "{:#?}", rig.logs);
    assert!(
        rig.waiting.is_empty(),
        "getmanifest answered without it: {:?}",
        rig.waiting
    );
}

#[test]
fn a_failed_wasm_spawn_during_a_swap_keeps_the_old_one_serving() {
    let mut rig = Rig::new(&["/p/plugin.wasm"]);
    rig.boot();
    let serving = rig.gen();
    rig.spawn_error = Some(SpawnError::Other("not a wasm module".into()));
    rig.save();
    assert_eq!((rig.phase(), rig.gen()), ("serving", serving));
    assert!(rig.logged("the old one keeps serving"), "{:#?}", rig.logs);
    rig.request("echo", json!({}));
    rig.settle();
    rig.nothing_waits();
}

#[test]
fn a_wasm_start_still_compiling_is_not_replaced_however_long_it_takes() {
    let mut rig = Rig::new(&["/p/plugin.wasm"]);
    rig.boot();
    rig.exit(rig.gen(), "trapped: unreachable");
    let starting = rig.gen();
    assert_eq!(rig.phase(), "starting");
    // A busy machine: the compile takes far longer than the grace period,
    // and saves keep coming.
    for _ in 0..20 {
        rig.now += Duration::from_millis(500);
        rig.save();
    }
    assert_eq!(rig.gen(), starting, "not replaced while compiling");
    assert_eq!(spawned(&rig).len(), 2);
    // Compiled, then silent for longer than the grace period: stuck.
    rig.reports(
        starting,
        InstanceEvent::Compiled(crate::backend::wasm::CompileRecord {
            millis: 9000.0,
            source: crate::backend::wasm::ModuleSource::Compiled,
            compiler: crate::backend::wasm::Compiler::Winch,
        }),
    );
    rig.now += Duration::from_secs(3);
    rig.save();
    assert!(rig.gen() > starting, "a stuck start is replaced");
    rig.settle();
    assert_eq!(rig.phase(), "serving");
    rig.nothing_waits();
}

#[test]
fn a_slow_native_start_finishes_in_the_end_however_often_the_file_is_saved() {
    let mut rig = Rig::new(&["/p/plugin.py"]);
    rig.boot();
    rig.exit(rig.gen(), "exited with status 1");
    // Every start takes 5 s (a busy machine), saves come every 150 ms:
    // the patience doubles with each start replaced, until one finishes.
    let mut served = false;
    for _ in 0..400 {
        rig.now += Duration::from_millis(150);
        rig.save();
        rig.settle_exits();
        let g = rig.gen();
        let age = rig.now.saturating_duration_since(
            rig.sup.plugins[PluginId(0)]
                .phase
                .generation()
                .map_or(rig.now, |g| g.started),
        );
        if rig.phase() == "starting" && age >= Duration::from_secs(5) {
            rig.answer(g, "getmanifest");
            rig.answer(g, "init");
        }
        // It serves, if only until the newest save reloads it.
        if rig.logged("serving after") {
            served = true;
            break;
        }
    }
    assert!(served, "it never served: {:#?}", rig.logs);
}

#[test]
fn a_module_is_compiled_in_the_background_only_while_a_version_serves() {
    use crate::backend::wasm::Urgency;
    let mut rig = Rig::new(&["/p/plugin.wasm"]);
    rig.boot();
    let first = rig.gen();
    assert_eq!(
        rig.fakes[&(PluginId(0), first)].urgency,
        Some(Urgency::Urgent)
    );
    rig.save();
    let next = *spawned(&rig).last().expect("next");
    assert_eq!(
        rig.fakes[&(PluginId(0), next)].urgency,
        Some(Urgency::Background)
    );
    // The serving one dies while the next still compiles: calls now wait
    // for a version, so it starts over, urgently.
    rig.exit(first, "trapped: unreachable");
    assert!(rig.fakes[&(PluginId(0), next)].ending);
    let now = *spawned(&rig).last().expect("now");
    assert!(now > next);
    assert_eq!(
        rig.fakes[&(PluginId(0), now)].urgency,
        Some(Urgency::Urgent)
    );
    rig.settle();
    assert_eq!(rig.phase(), "serving");
    rig.nothing_waits();
}

/// The state of a plugin of `kind`, reloaded once with a call in flight,
/// is asked for once the call is answered and given to the new version
/// before it takes any call.
fn hand_over_with_a_call_in_flight(kind: Kind) {
    let mut rig = Rig::of(kind);
    rig.boot();
    let old = rig.gen();
    let call = rig.request("echo", json!({}));
    rig.save();
    let next = *spawned(&rig).last().expect("next");
    match kind.mode {
        ReloadMode::Overlap => {
            assert_eq!(rig.phase(), "swapping");
            rig.answer(next, "getmanifest");
            rig.answer(next, "init");
            assert_eq!(rig.phase(), "swapping", "{:#?}", rig.logs);
        }
        ReloadMode::Warm => {
            assert_eq!(rig.phase(), "swapping");
            rig.answer(next, "getmanifest");
            assert_eq!(rig.phase(), "draining", "{:#?}", rig.logs);
            assert!(
                !rig.fakes[&(PluginId(0), next)]
                    .asked
                    .values()
                    .any(|m| m == "init"),
                "init only once the old one is gone"
            );
        }
        ReloadMode::Cold => assert_eq!(rig.phase(), "draining"),
    }
    // A call now waits for the new version and its state.
    let waiting = rig.request("echo", json!({}));
    let asked =
        |rig: &Rig, g: Gen, m: &str| rig.fakes[&(PluginId(0), g)].asked.values().any(|x| x == m);
    assert!(
        !asked(&rig, old, "autoreload-save-state"),
        "asked while busy"
    );
    rig.answer(old, "echo");
    assert!(rig.answered.contains(&call));
    assert!(asked(&rig, old, "autoreload-save-state"), "{:#?}", rig.logs);
    rig.answer(old, "autoreload-save-state");
    rig.settle();
    let newest = rig.gen();
    assert!(newest > old);
    assert_eq!(rig.phase(), "serving");
    assert_eq!(rig.restored.get(&newest), Some(&json!({"saved_by": old})));
    assert!(rig.answered.contains(&waiting));
    assert!(rig.logged("state handed over"), "{:#?}", rig.logs);
    rig.nothing_waits();
}

#[test]
fn state_is_handed_over_after_the_calls_in_flight_in_every_mode() {
    for mode in [ReloadMode::Warm, ReloadMode::Overlap, ReloadMode::Cold] {
        hand_over_with_a_call_in_flight(Kind::native(mode, true));
        hand_over_with_a_call_in_flight(Kind::wasm(mode, true));
    }
}

#[test]
fn a_native_version_that_fails_to_start_leaves_the_old_one_serving() {
    let mut rig = Rig::new(&["/p/plugin.py"]);
    rig.boot();
    let (old, next) = rig.reload_failing("SyntaxError: invalid syntax");
    assert_eq!(rig.phase(), "serving");
    assert_eq!(rig.gen(), old);
    assert!(rig.logged("the old one keeps serving"), "{:#?}", rig.logs);
    assert!(rig.logged("SyntaxError"), "{:#?}", rig.logs);
    let call = rig.request("echo", json!({}));
    assert!(rig.answer(old, "echo"));
    assert!(rig.answered.contains(&call));
    rig.save();
    rig.settle();
    assert!(rig.gen() > next, "a later save starts a new version");
    rig.nothing_waits();
}

#[test]
fn a_version_that_cannot_run_beside_the_old_one_reloads_break_before_make() {
    let mut rig = Rig::new(&["/p/plugin.py"]);
    rig.boot();
    let (old, next) = rig.reload_failing("OSError: [Errno 98] Address already in use");
    assert!(
        rig.logged("cannot run beside the old one"),
        "{:#?}",
        rig.logs
    );
    assert!(
        rig.fakes[&(PluginId(0), old)].ending,
        "the old one is stopped"
    );
    rig.settle();
    assert_eq!(rig.phase(), "serving");
    assert!(rig.gen() > next);
    // From now on, straight to break-before-make.
    rig.save();
    assert_eq!(rig.phase(), "stopping", "{:#?}", rig.logs);
    rig.settle();
    let status = rig.sup.plugin_status(PluginId(0));
    assert!(status["break_before_make"]
        .as_str()
        .is_some_and(|s| s.contains("Address already in use")));
    rig.nothing_waits();
}

#[test]
fn a_state_not_saved_in_time_leaves_the_new_version_fresh_and_serving() {
    let mut rig = Rig::of(Kind::native(ReloadMode::Overlap, true));
    rig.boot();
    let (old, next) = rig.reload_to_init();
    let call = rig.request("echo", json!({}));
    // The old one never answers the save: its time runs out.
    rig.forget(old, "autoreload-save-state");
    rig.settle();
    assert_eq!(rig.gen(), next);
    assert!(rig.restored.is_empty());
    assert!(rig.logged("did not hand over its state: it did not answer in time"));
    assert!(rig.answered.contains(&call));
    rig.nothing_waits();
}

#[test]
fn a_refused_state_is_a_warning_and_the_new_version_serves() {
    let mut rig = Rig::of(Kind::wasm(ReloadMode::Overlap, true));
    rig.boot();
    let (old, next) = rig.reload_to_init();
    rig.answer(old, "autoreload-save-state");
    let id = format!("autoreload:restore-state#{next}");
    rig.forget(next, "autoreload-restore-state");
    rig.reports(
        next,
        InstanceEvent::Message(message(json!({"jsonrpc": "2.0", "id": id,
            "error": {"code": -1, "message": "schema 1 is too old"}}))),
    );
    assert_eq!(rig.phase(), "serving");
    assert_eq!(rig.gen(), next);
    assert!(
        rig.logged("did not take the state from generation"),
        "{:#?}",
        rig.logs
    );
    assert!(rig.logged("schema 1 is too old"));
    rig.settle();
    rig.nothing_waits();
}

#[test]
fn an_old_version_crashing_before_its_hand_over_leaves_the_new_one_serving() {
    let mut rig = Rig::of(Kind::native(ReloadMode::Overlap, true));
    rig.boot();
    let call = rig.request("echo", json!({}));
    let (old, next) = rig.reload_to_init();
    let held = rig.request("echo", json!({}));
    rig.exit(old, "exited with status 11");
    assert_eq!(rig.phase(), "serving");
    assert_eq!(rig.gen(), next);
    assert!(
        rig.answered.contains(&call),
        "the call in flight is answered"
    );
    rig.settle();
    assert!(rig.answered.contains(&held));
    assert!(rig.restored.is_empty(), "a crash hands nothing over");
    rig.nothing_waits();
}

#[test]
fn a_saved_state_outlives_a_broken_version_break_before_make() {
    let mut rig = Rig::of(Kind::native(ReloadMode::Cold, true));
    rig.boot();
    let first = rig.gen();
    rig.save();
    rig.broken = true;
    rig.settle();
    assert_eq!(rig.phase(), "down", "{:#?}", rig.logs);
    rig.broken = false;
    rig.save();
    rig.settle();
    assert_eq!(rig.phase(), "serving");
    let newest = rig.gen();
    assert_eq!(rig.restored.get(&newest), Some(&json!({"saved_by": first})));
    rig.nothing_waits();
}

/// lightningd puts the caller's id first in the ids it sends: a caller
/// choosing one that starts like the host's own hand-over ids still gets
/// its answer.
#[test]
fn a_caller_id_that_looks_like_a_hand_over_is_answered_like_any_other() {
    let mut rig = Rig::of(Kind::native(ReloadMode::Overlap, true));
    rig.boot();
    let g = rig.gen();
    let id = json!(format!("autoreload:save-state#{g}/cln:echo#1"));
    rig.waiting.insert(id.to_string(), "echo".into());
    rig.input(Input::Lightningd(frame(
        json!({"jsonrpc": "2.0", "id": id, "method": "echo", "params": {}}),
    )));
    assert!(rig.answer(g, "echo"));
    assert!(rig.answered.contains(&id.to_string()), "{:#?}", rig.logs);
    rig.nothing_waits();
}

/// A file renamed into place before its `chmod +x` (the chmod falls in
/// the settle window, no save of its own): the new version is tried again
/// shortly, while the old one serves, and then serves.
#[test]
fn a_new_version_not_yet_executable_is_tried_again_shortly() {
    let mut rig = Rig::new(&["/p/plugin.py"]);
    rig.boot();
    let old = rig.gen();
    rig.spawn_error = Some(SpawnError::NotExecutable);
    rig.save();
    assert_eq!(rig.phase(), "serving");
    assert_eq!(rig.gen(), old);
    rig.settle();
    assert_eq!(rig.phase(), "serving");
    assert!(rig.gen() > old, "{:#?}", rig.logs);
    assert!(!rig.logged("not executable"), "{:#?}", rig.logs);
    rig.nothing_waits();
}

/// Plugin 0 (warm start) serving: a save, and the new version answers
/// getmanifest: the old and the new generation.
fn warm_up(rig: &mut Rig) -> (Gen, Gen) {
    let old = rig.gen();
    rig.save();
    let next = *spawned(rig).last().expect("next");
    assert_eq!(rig.phase(), "swapping");
    assert!(rig.answer(next, "getmanifest"));
    (old, next)
}

fn asked(rig: &Rig, g: Gen, method: &str) -> bool {
    rig.fakes[&(PluginId(0), g)]
        .asked
        .values()
        .any(|m| m == method)
}

#[test]
fn a_warm_start_gives_init_only_once_the_old_version_is_gone() {
    let mut rig = Rig::of(Kind::native(ReloadMode::Warm, false));
    rig.boot();
    let call = rig.request("echo", json!({}));
    let (old, next) = warm_up(&mut rig);
    assert_eq!(rig.phase(), "draining", "{:#?}", rig.logs);
    // New calls wait; the old one finishes its own.
    let waiting = rig.request("echo", json!({}));
    assert!(!asked(&rig, old, "echo") || !rig.answered.contains(&waiting));
    assert!(rig.answer(old, "echo"));
    assert!(rig.answered.contains(&call));
    assert_eq!(rig.phase(), "stopping");
    assert!(
        rig.fakes[&(PluginId(0), old)].ending,
        "the old one is stopped"
    );
    assert!(
        !asked(&rig, next, "init"),
        "init before the old one is gone"
    );
    rig.settle_exits();
    assert!(asked(&rig, next, "init"), "{:#?}", rig.logs);
    assert!(rig.answer(next, "init"));
    assert_eq!(rig.phase(), "serving");
    assert_eq!(rig.gen(), next);
    assert!(
        asked(&rig, next, "echo"),
        "the held call goes to the new one"
    );
    rig.settle();
    rig.nothing_waits();
}

#[test]
fn a_new_version_broken_in_init_brings_the_old_version_back_with_its_state() {
    for kind in [
        Kind::native(ReloadMode::Warm, true),
        Kind::wasm(ReloadMode::Warm, true),
        Kind::native(ReloadMode::Cold, true),
    ] {
        let mut rig = Rig::of(kind);
        rig.boot();
        let old = rig.gen();
        let call = rig.request("echo", json!({}));
        rig.save();
        let failing = *spawned(&rig).last().expect("next");
        if kind.mode == ReloadMode::Warm {
            assert!(rig.answer(failing, "getmanifest"));
        }
        assert_eq!(rig.phase(), "draining", "{kind:?}");
        assert!(rig.answer(old, "echo"));
        assert!(
            rig.answer(old, "autoreload-save-state"),
            "{kind:?}: {:#?}",
            rig.logs
        );
        rig.settle_exits();
        let failing = *spawned(&rig).last().expect("next");
        rig.answer(failing, "getmanifest");
        rig.init_error = Some("[Errno 2] No such file or directory: 'conf.json'");
        assert!(rig.answer(failing, "init"), "{kind:?}: {:#?}", rig.logs);
        rig.init_error = None;
        rig.settle();
        let back = rig.gen();
        assert!(back > failing, "{kind:?}");
        assert_eq!(rig.sources[&back], super::Source::Kept(old), "{kind:?}");
        assert_eq!(rig.phase(), "serving", "{kind:?}: {:#?}", rig.logs);
        assert_eq!(
            rig.restored.get(&back),
            Some(&json!({"saved_by": old})),
            "{kind:?}: the state the old one handed over"
        );
        assert!(rig.answered.contains(&call));
        assert!(
            rig.logged("Bringing back the version generation"),
            "{:#?}",
            rig.logs
        );
        let status = rig.sup.plugin_status(PluginId(0));
        assert_eq!(status["last_reload"]["trigger"], "rollback", "{status:#}");
        assert!(status["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("conf.json")));
        rig.nothing_waits();
    }
}

#[test]
fn a_version_brought_back_that_fails_too_leaves_the_plugin_down_until_a_save() {
    let mut rig = Rig::of(Kind::native(ReloadMode::Warm, false));
    rig.boot();
    rig.init_error = Some("boom");
    rig.save();
    rig.settle();
    assert_eq!(rig.phase(), "down", "{:#?}", rig.logs);
    let call = rig.request("echo", json!({}));
    assert!(rig.answered.contains(&call), "answered for it while down");
    rig.init_error = None;
    rig.save();
    rig.settle();
    assert_eq!(rig.phase(), "serving");
    assert_eq!(rig.sources[&rig.gen()], super::Source::File);
    rig.nothing_waits();
}

#[test]
fn a_new_version_that_dies_while_the_old_one_drains_leaves_the_old_one_serving() {
    let mut rig = Rig::of(Kind::native(ReloadMode::Warm, false));
    rig.boot();
    let call = rig.request("echo", json!({}));
    let (old, next) = warm_up(&mut rig);
    let waiting = rig.request("echo", json!({}));
    rig.exit(next, "exited with status 1");
    assert_eq!(rig.phase(), "serving");
    assert_eq!(rig.gen(), old);
    assert!(rig.logged("the old one keeps serving"), "{:#?}", rig.logs);
    rig.settle();
    assert!(rig.answered.contains(&call) && rig.answered.contains(&waiting));
    assert_eq!(rig.gen(), old);
    rig.nothing_waits();
}

#[test]
fn a_new_version_that_dies_while_the_old_one_stops_brings_the_old_version_back() {
    let mut rig = Rig::of(Kind::native(ReloadMode::Warm, false));
    rig.boot();
    let (old, next) = warm_up(&mut rig);
    assert_eq!(rig.phase(), "stopping");
    rig.exit(next, "exited with status 1");
    let call = rig.request("echo", json!({}));
    rig.settle();
    assert_eq!(rig.phase(), "serving");
    assert_eq!(rig.sources[&rig.gen()], super::Source::Kept(old));
    assert!(rig.answered.contains(&call));
    rig.nothing_waits();
}

#[test]
fn a_conflict_in_an_init_error_answer_makes_a_full_overlap_reload_warm() {
    let mut rig = Rig::of(Kind::native(ReloadMode::Overlap, false));
    rig.boot();
    let old = rig.gen();
    rig.save();
    let next = *spawned(&rig).last().expect("next");
    assert!(rig.answer(next, "getmanifest"));
    rig.init_error = Some("[Errno 98] Address already in use");
    assert!(rig.answer(next, "init"));
    rig.init_error = None;
    assert!(
        rig.logged("cannot run beside the old one"),
        "{:#?}",
        rig.logs
    );
    // The same reload goes on warm: the old one serves until the newest
    // version has warmed up, then stops before its init.
    assert_eq!(rig.phase(), "swapping");
    assert_eq!(rig.gen(), old);
    rig.settle();
    assert_eq!(rig.phase(), "serving");
    assert!(rig.gen() > next);
    let status = rig.sup.plugin_status(PluginId(0));
    assert_eq!(status["reload_mode"], "warm", "{status:#}");
    assert!(status["reload_mode_why"]
        .as_str()
        .is_some_and(|s| s.contains("Address already in use")));
    rig.nothing_waits();
}

#[test]
fn a_plugin_that_takes_db_write_reloads_break_before_make_by_default() {
    let mut rig = Rig::new(&["/p/plugin.py"]);
    rig.init_options = json!({});
    rig.boot();
    rig.save();
    // Nothing in flight: the old one stops before any new process starts.
    assert_eq!(rig.phase(), "stopping", "{:#?}", rig.logs);
    assert_eq!(spawned(&rig).len(), 1);
    let status = rig.sup.plugin_status(PluginId(0));
    assert_eq!(status["reload_mode"], "cold", "{status:#}");
    rig.settle();
    assert_eq!(rig.phase(), "serving");
    rig.nothing_waits();
}

#[test]
fn a_value_for_all_plugins_leaves_a_db_write_plugin_break_before_make() {
    for (values, want) in [
        (json!(["true"]), "cold"),
        (json!(["warm"]), "cold"),
        (json!(["full", "other::warm"]), "cold"),
        (json!(["true", "PLUGIN::warm"]), "warm"),
        (json!(["PLUGIN::full"]), "full"),
    ] {
        let mut rig = Rig::new(&["/p/plugin.py"]);
        let values: Vec<String> = values
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|v| match v.strip_prefix("PLUGIN::") {
                Some(mode) => rig.named(mode),
                None => v.to_string(),
            })
            .collect();
        rig.init_options = json!({ "autoreload-overlap": values });
        rig.boot();
        let status = rig.sup.plugin_status(PluginId(0));
        assert_eq!(status["reload_mode"], want, "{values:?}: {status:#}");
    }
}

#[test]
fn autoreload_restart_answers_once_the_old_process_is_gone() {
    for mode in [ReloadMode::Warm, ReloadMode::Overlap, ReloadMode::Cold] {
        let mut rig = Rig::of(Kind::native(mode, false));
        rig.boot();
        let old = rig.gen();
        let restart = rig.request("autoreload-restart", json!({}));
        // Everything but the old process's exit.
        for _ in 0..50 {
            let asked: Vec<(Gen, String)> = rig
                .fakes
                .iter()
                .filter(|(_, f)| !f.exited)
                .flat_map(|(&(_, g), f)| f.asked.values().map(move |m| (g, m.clone())))
                .collect();
            match asked.first() {
                Some((g, m)) => {
                    let (g, m) = (*g, m.clone());
                    rig.answer(g, &m);
                }
                None => break,
            }
        }
        assert!(
            !rig.answered.contains(&restart),
            "{mode:?}: answered while the old process runs"
        );
        assert!(rig.fakes[&(PluginId(0), old)].ending, "{mode:?}");
        rig.settle();
        assert!(rig.answered.contains(&restart), "{mode:?}: {:#?}", rig.logs);
        rig.nothing_waits();
    }
}

#[test]
fn a_save_while_the_old_version_is_coming_back_goes_live_after_it() {
    let mut rig = Rig::of(Kind::native(ReloadMode::Warm, false));
    rig.boot();
    let (old, next) = warm_up(&mut rig);
    assert_eq!(rig.phase(), "stopping");
    rig.exit(next, "exited with status 1");
    // The fix is saved before the old version is back.
    rig.save();
    rig.settle();
    assert_eq!(rig.phase(), "serving");
    let newest = rig.gen();
    assert_eq!(rig.sources[&newest], super::Source::File, "{:#?}", rig.logs);
    assert!(
        rig.sources.values().any(|s| *s == super::Source::Kept(old)),
        "the old version came back first"
    );
    rig.nothing_waits();
}
