//! The test rig: a [`Rig`] plays the host's loop and the plugin
//! instances by hand (no process, file or clock): it answers spawns,
//! records what each instance is sent, makes killed or closed instances
//! exit when told to settle, answers requests like a well-behaved plugin,
//! and moves the clock to the supervisor's deadlines.

pub(super) use crate::backend::{Exit, InstanceEvent};
use crate::framing::Framer;
use crate::framing::{Frame, Message};
pub(super) use crate::ids::{Gen, PluginId};
use crate::locate::Located;
use crate::locate::Source;
pub(super) use crate::supervisor::plugin::ReloadMode;
pub(super) use crate::supervisor::*;
pub(super) use bytes::Bytes;
pub(super) use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
pub(super) use std::time::{Duration, Instant, SystemTime};

pub(super) const MANIFEST: &str = r#"{"options":[],"rpcmethods":[{"name":"echo","usage":"","description":"echoes"}],"hooks":[{"name":"peer_connected"},{"name":"db_write"}],"subscriptions":["shutdown","connect"],"dynamic":true}"#;

/// One instance as the rig sees it.
#[derive(Debug, Default)]
pub(super) struct Fake {
    /// Requests it was sent and has not answered: id → method.
    pub(super) asked: BTreeMap<String, String>,
    /// It was killed, terminated or its stdin closed: it exits on settle.
    pub(super) ending: bool,
    /// It exited (the supervisor was told).
    pub(super) exited: bool,
    /// How soon its module was to be compiled.
    pub(super) urgency: Option<crate::backend::wasm::Urgency>,
}

/// The loop and the instances, by hand.
pub(super) struct Rig {
    pub(super) sup: Supervisor,
    pub(super) now: Instant,
    pub(super) fakes: BTreeMap<(PluginId, Gen), Fake>,
    /// Spawns' outcomes, fed back once the outputs in hand are performed.
    pub(super) spawn_answers: std::collections::VecDeque<Input>,
    /// Requests lightningd sent and has had no answer to: id → method.
    pub(super) waiting: BTreeMap<String, String>,
    /// Every id lightningd got an answer to, to catch a second answer.
    pub(super) answered: BTreeSet<String>,
    /// Hook ids lightningd sent (an error answer to one aborts it).
    pub(super) hooks: BTreeSet<String>,
    /// Log lines the host wrote.
    pub(super) logs: Vec<String>,
    pub(super) exited: bool,
    pub(super) next_id: u64,
    /// Answer the next spawn of each plugin with this error.
    pub(super) spawn_error: Option<SpawnError>,
    /// The plugin answers getmanifest with an error.
    pub(super) broken: bool,
    /// The plugin answers init with an error saying this, as pyln-client
    /// does when its init handler raises.
    pub(super) init_error: Option<&'static str>,
    /// Which file each generation was started from.
    pub(super) sources: BTreeMap<Gen, crate::supervisor::Source>,
    /// File stamps, bumped by each save.
    pub(super) saves: u64,
    /// The plugin declares state and answers the hand-over like a
    /// working one.
    pub(super) keeps_state: bool,
    /// The generations whose optimized code the supervisor asked for.
    pub(super) optimize_asked: Vec<Gen>,
    /// The state each generation restored: gen → state.
    pub(super) restored: BTreeMap<Gen, Value>,
    /// The options lightningd's init gives.
    pub(super) init_options: Value,
    /// The first plugin's file name: its name in `NAME::` option values.
    pub(super) plugin_file: Option<String>,
    /// Which row of the table runs, for messages.
    pub(super) row: String,
}

pub(super) fn frame(v: Value) -> Frame {
    let mut f = Framer::new();
    f.push(v.to_string().as_bytes());
    f.push(b"\n\n");
    f.next_frame().expect("a frame")
}

pub(super) fn message(v: Value) -> Message {
    match frame(v) {
        Frame::Message(m) => m,
        other => panic!("not a message: {other:?}"),
    }
}

impl Rig {
    /// A supervisor for plugins at `paths` (`.wasm` ones run as wasm).
    pub(super) fn new(paths: &[&str]) -> Rig {
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
            spawn_answers: Default::default(),
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
            optimize_asked: vec![],
            restored: BTreeMap::new(),
            init_options: json!({}),
            row: String::new(),
            plugin_file: None,
        };
        // Warm start, named: the rig's plugin takes db_write, which a
        // value for all plugins leaves break-before-make.
        rig.plugin_file = paths
            .first()
            .map(|p| p.rsplit('/').next().unwrap_or(p).to_string());
        rig.init_options = json!({"autoreload-overlap": [rig.named("warm")]});
        rig
    }

    /// A rig for one plugin of this kind.
    pub(super) fn of(kind: PluginKind) -> Rig {
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
    pub(super) fn named(&self, value: &str) -> String {
        let name = self.plugin_file.as_deref().unwrap_or("plugin");
        format!("{name}::{value}")
    }

    pub(super) fn input(&mut self, input: Input) {
        self.sup.handle(self.now, input);
        self.drain();
    }

    /// Performs what the supervisor asked for, then feeds back what
    /// spawning answered, as the loop does.
    pub(super) fn drain(&mut self) {
        loop {
            self.perform_outputs();
            match self.spawn_answers.pop_front() {
                Some(answer) => self.sup.handle(self.now, answer),
                None => return,
            }
        }
    }

    pub(super) fn perform_outputs(&mut self) {
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
                    self.spawn_answers.push_back(answer);
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
                Output::Status { id, entries } => {
                    let list: Vec<Value> = entries.into_iter().map(|(_, e)| e).collect();
                    self.lightningd_gets(&jsonrpc::response(&id, json!({ "plugins": list })));
                }
                Output::Exit => self.exited = true,
                Output::Optimize { gen, .. } => self.optimize_asked.push(gen),
                Output::Served { .. }
                | Output::WatchFiles(_)
                | Output::StopWatching
                | Output::SetUpBuilds { .. }
                | Output::FindWrapper { .. }
                | Output::RestartThrough { .. } => {}
            }
        }
    }

    pub(super) fn lightningd_gets(&mut self, bytes: &[u8]) {
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
    pub(super) fn request(&mut self, method: &str, params: Value) -> String {
        self.send_request(method, params, false)
    }

    pub(super) fn hook(&mut self, name: &str, params: Value) -> String {
        self.send_request(name, params, true)
    }

    /// lightningd sends a request (a hook, which must never be answered
    /// with an error, if `hook`); its id.
    pub(super) fn send_request(&mut self, method: &str, params: Value, hook: bool) -> String {
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
    pub(super) fn reports(&mut self, gen: Gen, event: InstanceEvent) {
        self.input(Input::Instance {
            plugin: PluginId(0),
            gen,
            event,
        });
    }

    pub(super) fn notify(&mut self, method: &str, params: Value) {
        self.input(Input::Lightningd(frame(
            json!({"jsonrpc": "2.0", "method": method, "params": params}),
        )));
    }

    /// lightningd's getmanifest (the plugins start).
    pub(super) fn getmanifest(&mut self) {
        self.request("getmanifest", json!({"allow-deprecated-apis": false}));
    }

    /// lightningd's init.
    pub(super) fn init(&mut self) {
        self.request(
            "init",
            json!({"options": self.init_options.clone(), "configuration": {"lightning-dir": "/ld", "rpc-file": "lightning-rpc"}}),
        );
    }

    /// The current generation of plugin 0.
    pub(super) fn gen(&self) -> Gen {
        self.sup.plugins[PluginId(0)]
            .phase()
            .generation()
            .map_or(Gen(0), |g| g.number)
    }

    pub(super) fn phase(&self) -> &'static str {
        self.sup.plugins[PluginId(0)].phase().name()
    }

    /// Instance `gen` of plugin 0 answers what it was asked for with
    /// `method` (the first such request), like a working plugin would.
    pub(super) fn answer(&mut self, gen: Gen, method: &str) -> bool {
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
    pub(super) fn exit(&mut self, gen: Gen, how: &str) {
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
    pub(super) fn save(&mut self) {
        self.saves += 1;
        let file = FileStamp::test(self.saves);
        self.input(Input::Changed {
            plugin: PluginId(0),
            file,
        });
    }

    /// Moves the clock to the supervisor's next deadline, if it is due by
    /// `until` and the host has not exited, and fires what is due then.
    pub(super) fn fire_one(&mut self, until: Instant) -> bool {
        match self.sup.poll_timeout() {
            Some(due) if due <= until && !self.exited => {
                self.now = self.now.max(due);
                self.sup.handle_timeout(self.now);
                self.drain();
                true
            }
            _ => false,
        }
    }

    /// Lets everything run its course: instances told to end exit,
    /// working instances answer what they were asked, timers fire.
    pub(super) fn settle(&mut self) {
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
            return;
        }
        panic!("did not settle: {:#?}", self.logs);
    }

    /// Instances told to end exit (and nothing else happens).
    pub(super) fn settle_exits(&mut self) {
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
    pub(super) fn boot(&mut self) {
        self.getmanifest();
        let g = self.gen();
        assert!(self.answer(g, "getmanifest"), "{:#?}", self.logs);
        self.init();
        assert!(self.answer(g, "init"), "{:#?}", self.logs);
        assert_eq!(self.phase(), "serving", "{:#?}", self.logs);
    }

    /// Every request lightningd sent was answered.
    pub(super) fn nothing_waits(&self) {
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
    pub(super) fn reload_to_init(&mut self) -> (Gen, Gen) {
        let old = self.gen();
        self.save();
        let next = *spawned(self).last().expect("next");
        self.answer(next, "getmanifest");
        self.answer(next, "init");
        (old, next)
    }

    /// Instance `gen` will not answer what it was asked with `method`.
    pub(super) fn forget(&mut self, gen: Gen, method: &str) {
        if let Some(f) = self.fakes.get_mut(&(PluginId(0), gen)) {
            f.asked.retain(|_, m| m != method);
        }
    }

    /// Plugin 0 serving, a save starts a new version that says `line` on
    /// stderr and exits: the old and the new generation.
    pub(super) fn reload_failing(&mut self, line: &str) -> (Gen, Gen) {
        let old = self.gen();
        self.save();
        let next = *spawned(self).last().expect("next");
        self.reports(next, InstanceEvent::Stderr(line.into()));
        self.exit(next, "exited with status 1");
        (old, next)
    }

    pub(super) fn logged(&self, needle: &str) -> bool {
        self.logs.iter().any(|l| l.contains(needle))
    }
}

/// The generations spawned so far for plugin 0.
pub(super) fn spawned(rig: &Rig) -> Vec<Gen> {
    rig.fakes.keys().map(|&(_, g)| g).collect()
}

/// A kind of plugin the table runs for.
#[derive(Debug, Clone, Copy)]
pub(super) struct PluginKind {
    pub(super) path: &'static str,
    pub(super) mode: ReloadMode,
    pub(super) keeps_state: bool,
}

impl PluginKind {
    pub(super) const fn native(mode: ReloadMode, keeps_state: bool) -> PluginKind {
        PluginKind {
            path: "/p/plugin.py",
            mode,
            keeps_state,
        }
    }

    pub(super) const fn wasm(mode: ReloadMode, keeps_state: bool) -> PluginKind {
        PluginKind {
            path: "/p/plugin.wasm",
            mode,
            keeps_state,
        }
    }
}

pub(super) const KINDS: &[PluginKind] = {
    use ReloadMode::{Cold, Overlap, Warm};
    &[
        PluginKind::native(Warm, false),
        PluginKind::native(Overlap, false),
        PluginKind::native(Cold, false),
        PluginKind::wasm(Warm, false),
        PluginKind::wasm(Overlap, false),
        PluginKind::wasm(Cold, false),
        PluginKind::native(Warm, true),
        PluginKind::native(Overlap, true),
        PluginKind::native(Cold, true),
        PluginKind::wasm(Warm, true),
        PluginKind::wasm(Overlap, true),
        PluginKind::wasm(Cold, true),
    ]
};
