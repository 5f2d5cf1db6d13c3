//! The table: every phase a plugin can be in × every input that can reach
//! it, for every kind of plugin, each checked for what lightningd cannot
//! survive (a request never answered, one answered twice, an error answer
//! to a hook).

use super::rig::*;
use crate::backend::wasm::{CompileRecord, Compiler, ModuleSource};
use crate::framing::{Frame, Kind as MessageKind};

/// An enum and the list of all its variants, from one list: `ALL` is
/// complete by construction.
macro_rules! with_all {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $($variant:ident),* $(,)? }) => {
        $(#[$m])*
        $vis enum $name {
            $($variant),*
        }

        impl $name {
            $vis const ALL: &[$name] = &[$($name::$variant),*];
        }
    };
}

with_all! {
    /// The phases a plugin is brought to before an input.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Setup {
        StartingGetmanifestSent,
        StartingWaitingForInit,
        StartingInitSent,
        Serving,
        ServingACallInFlight,
        ReloadingACallInFlight,
        Reloading,
        NewAnsweredInitACallInFlight,
        NewAnsweredInit,
        NewAnsweredGetmanifestACallInFlight,
        NewAnsweredGetmanifest,
        OldFailedToComeBack,
        DownAfterFailingToStart,
        DownBackingOff,
        DownAfterACrashLoop,
    }
}

impl Setup {
    /// The phase it leaves a plugin of `kind` in: the table's expected
    /// phase before the input. Native and wasm alike; where a new version
    /// gets init only once the old one is gone (warm, cold), the setups
    /// that answer the new version's init find none sent yet.
    fn phase(self, kind: PluginKind) -> &'static str {
        use ReloadMode::*;
        use Setup::*;
        let state = kind.keeps_state;
        match (self, kind.mode) {
            (StartingGetmanifestSent | StartingWaitingForInit | StartingInitSent, _) => "starting",
            (Serving | ServingACallInFlight, _) => "serving",
            (ReloadingACallInFlight | Reloading, Warm | Overlap) => "swapping",
            (ReloadingACallInFlight, Cold) => "draining",
            // Nothing in flight: the old one is asked for its state, or
            // stops at once.
            (Reloading | NewAnsweredInit | NewAnsweredGetmanifest, Warm | Cold) if state => {
                "draining"
            }
            (Reloading | NewAnsweredInit | NewAnsweredGetmanifest, Warm | Cold) => "stopping",
            (NewAnsweredInitACallInFlight | NewAnsweredGetmanifestACallInFlight, Warm | Cold) => {
                "draining"
            }
            (NewAnsweredGetmanifestACallInFlight | NewAnsweredGetmanifest, Overlap) => "swapping",
            // Full overlap: with state, the old one drains its call and
            // hands it over; without, it retires and the new one serves.
            (NewAnsweredInitACallInFlight | NewAnsweredInit, Overlap) if state => "swapping",
            (NewAnsweredInitACallInFlight | NewAnsweredInit, Overlap) => "serving",
            // Full overlap: the broken versions never replaced the old
            // one. Cold with state: the old version's comeback is being
            // given its state.
            (OldFailedToComeBack, Overlap) => "serving",
            (OldFailedToComeBack, Cold) if state => "starting",
            (OldFailedToComeBack, Warm | Cold) => "down",
            (DownAfterFailingToStart | DownBackingOff | DownAfterACrashLoop, _) => "down",
        }
    }
}

/// The setups that bring a plugin to each phase: a match with no
/// wildcard, so that a new [`Phase`] does not compile until the table has
/// a row for it.
fn setups_reaching(phase: &Phase) -> &'static [Setup] {
    use Setup::*;
    match phase {
        Phase::Down { .. } => &[
            OldFailedToComeBack,
            DownAfterFailingToStart,
            DownBackingOff,
            DownAfterACrashLoop,
        ],
        Phase::Starting { .. } => &[
            StartingGetmanifestSent,
            StartingWaitingForInit,
            StartingInitSent,
            OldFailedToComeBack,
        ],
        Phase::Serving { .. } => &[
            Serving,
            ServingACallInFlight,
            NewAnsweredInitACallInFlight,
            NewAnsweredInit,
            OldFailedToComeBack,
        ],
        Phase::Swapping { .. } => &[
            ReloadingACallInFlight,
            Reloading,
            NewAnsweredInitACallInFlight,
            NewAnsweredInit,
            NewAnsweredGetmanifestACallInFlight,
            NewAnsweredGetmanifest,
        ],
        Phase::Draining { .. } => &[
            ReloadingACallInFlight,
            Reloading,
            NewAnsweredInitACallInFlight,
            NewAnsweredInit,
            NewAnsweredGetmanifestACallInFlight,
            NewAnsweredGetmanifest,
        ],
        Phase::Stopping { .. } => &[Reloading, NewAnsweredInit, NewAnsweredGetmanifest],
    }
}

with_all! {
    /// The inputs (and the passing of time) that can reach a plugin.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Event {
        FileSaved,
        FileSavedButGone,
        CurrentGenerationExits,
        NewestGenerationExits,
        AutoreloadRestart,
        AutoreloadStatus,
        ShutdownNotification,
        LightningdClosed,
        RpcCall,
        HookCall,
        DbWrite,
        Notification,
        SetConfig,
        Check,
        ResponseFromLightningd,
        GarbageFromLightningd,
        LateInitAnswerFromAnOlderGeneration,
        GarbageOnStdout,
        StderrLine,
        Compiled,
        Warning,
        Reregistered,
        OptimizedCodeReady,
        DeadlinesPass,
    }
}

impl Event {
    /// Whether the host is gone after it (and what it leads to).
    fn ends_the_host(self) -> bool {
        matches!(self, Event::ShutdownNotification | Event::LightningdClosed)
    }
}

/// The rows that stand for each [`Input`]: matches with no wildcard, so
/// that a new kind of input (an [`Input`], [`Frame`] or [`InstanceEvent`]
/// variant, or a kind of message) does not compile until the table has
/// rows for it. (The passing of time, [`Supervisor::handle_timeout`], is
/// [`Event::DeadlinesPass`].)
fn rows_for(input: &Input) -> &'static [Event] {
    use Event::*;
    match input {
        Input::Lightningd(Frame::Message(m)) => match &m.kind {
            MessageKind::Request { .. } => &[
                AutoreloadRestart,
                AutoreloadStatus,
                RpcCall,
                HookCall,
                DbWrite,
                SetConfig,
                Check,
            ],
            MessageKind::Notification { .. } => &[ShutdownNotification, Notification],
            MessageKind::Response { .. } => &[ResponseFromLightningd],
        },
        Input::Lightningd(Frame::Garbage { .. }) => &[GarbageFromLightningd],
        Input::LightningdClosed => &[LightningdClosed],
        Input::Spawned { .. } => &[FileSaved],
        Input::SpawnFailed { .. } => &[FileSavedButGone],
        Input::Instance { event, .. } => match event {
            InstanceEvent::Message(_) => &[LateInitAnswerFromAnOlderGeneration],
            InstanceEvent::Garbage { .. } => &[GarbageOnStdout],
            InstanceEvent::Stderr(_) => &[StderrLine],
            InstanceEvent::Compiled(_) => &[Compiled],
            InstanceEvent::Warn(_) => &[Warning],
            InstanceEvent::Exited(_) => &[CurrentGenerationExits, NewestGenerationExits],
        },
        Input::Changed { .. } => &[FileSaved],
        Input::Reregistered { .. } => &[Reregistered],
        Input::Optimized { .. } => &[OptimizedCodeReady],
    }
}

#[test]
fn every_event_stands_for_an_input_and_every_input_has_rows() {
    // One input of each kind: the events standing for them are all the
    // events there are.
    let id = || crate::framing::RawId::from_string("\"x\"");
    let p = PluginId(0);
    let inputs = [
        Input::Lightningd(frame(json!({"jsonrpc": "2.0", "id": 1, "method": "echo"}))),
        Input::Lightningd(frame(json!({"jsonrpc": "2.0", "method": "connect"}))),
        Input::Lightningd(frame(json!({"jsonrpc": "2.0", "id": 1, "result": {}}))),
        Input::Lightningd(Frame::Garbage {
            bytes: Bytes::from_static(b"x"),
            reason: "x".into(),
        }),
        Input::LightningdClosed,
        Input::Spawned {
            plugin: p,
            gen: Gen(1),
            pid: None,
            file: None,
        },
        Input::SpawnFailed {
            plugin: p,
            gen: Gen(1),
            error: SpawnError::NotFound,
        },
        Input::Changed {
            plugin: p,
            file: None,
        },
        Input::Reregistered {
            caller: Some(id()),
            outcome: Err("x".into()),
        },
        Input::Optimized {
            plugin: p,
            gen: Gen(1),
            outcome: Ok(optimized()),
        },
    ]
    .into_iter()
    .chain(
        [
            InstanceEvent::Message(message(json!({"jsonrpc": "2.0", "id": 1, "result": {}}))),
            InstanceEvent::Garbage {
                bytes: Bytes::from_static(b"x"),
                reason: "x".into(),
            },
            InstanceEvent::Stderr("x".into()),
            InstanceEvent::Compiled(compile_record()),
            InstanceEvent::Warn("x".into()),
            InstanceEvent::Exited(Exit::plain("x")),
        ]
        .map(|event| Input::Instance {
            plugin: p,
            gen: Gen(1),
            event,
        }),
    );
    let mut covered: Vec<Event> = inputs.flat_map(|i| rows_for(&i).to_vec()).collect();
    covered.push(Event::DeadlinesPass);
    for e in Event::ALL {
        assert!(covered.contains(e), "{e:?} stands for no input");
    }
}

pub(super) fn optimized() -> crate::backend::wasm::Optimized {
    crate::backend::wasm::Optimized {
        millis: 1.0,
        source: ModuleSource::Memory,
    }
}

pub(super) fn compile_record() -> CompileRecord {
    CompileRecord {
        millis: 1.0,
        source: ModuleSource::Compiled,
        compiler: Compiler::Winch,
    }
}

/// Brings the rig's plugin to `setup`.
pub(super) fn setup(rig: &mut Rig, setup: Setup) {
    match setup {
        Setup::StartingGetmanifestSent => rig.getmanifest(),
        Setup::StartingWaitingForInit => {
            rig.getmanifest();
            let g = rig.gen();
            rig.answer(g, "getmanifest");
        }
        Setup::StartingInitSent => {
            rig.getmanifest();
            let g = rig.gen();
            rig.answer(g, "getmanifest");
            rig.init();
        }
        Setup::Serving => rig.boot(),
        Setup::ServingACallInFlight => {
            rig.boot();
            rig.request("echo", json!({}));
        }
        Setup::ReloadingACallInFlight => {
            rig.boot();
            rig.request("echo", json!({}));
            rig.save();
        }
        Setup::Reloading => {
            rig.boot();
            rig.save();
        }
        // With state: the old one drains its call (new calls wait), or is
        // asked for its state. Without: the old one retires.
        Setup::NewAnsweredInitACallInFlight => {
            rig.boot();
            rig.request("echo", json!({}));
            rig.save();
            let next = *spawned(rig).last().expect("a generation");
            rig.answer(next, "getmanifest");
            rig.answer(next, "init");
        }
        Setup::NewAnsweredInit => {
            rig.boot();
            rig.save();
            let next = *spawned(rig).last().expect("a generation");
            rig.answer(next, "getmanifest");
            rig.answer(next, "init");
        }
        // Warm: the old one drains (new calls wait), or stops, while the
        // new one waits for init.
        Setup::NewAnsweredGetmanifestACallInFlight => {
            rig.boot();
            rig.request("echo", json!({}));
            rig.save();
            let next = *spawned(rig).last().expect("a generation");
            rig.answer(next, "getmanifest");
        }
        Setup::NewAnsweredGetmanifest => {
            rig.boot();
            rig.save();
            let next = *spawned(rig).last().expect("a generation");
            rig.answer(next, "getmanifest");
        }
        // The new version fails init once the old one is gone (warm,
        // cold), and the version brought back is starting.
        Setup::OldFailedToComeBack => {
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
        Setup::DownAfterFailingToStart => {
            rig.broken = true;
            rig.getmanifest();
            let g = rig.gen();
            rig.answer(g, "getmanifest");
            rig.init();
            assert_eq!(rig.phase(), "down");
            rig.broken = false;
        }
        Setup::DownBackingOff => {
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
        Setup::DownAfterACrashLoop => {
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
    }
}

/// `event` reaches the rig's plugin.
pub(super) fn event(rig: &mut Rig, event: Event) {
    use Event::*;
    // lightningd calls a plugin's methods and hooks only once it has the
    // manifest that registers them.
    let registered = !matches!(
        rig.sup.startup,
        Startup::NotStarted | Startup::Manifest { .. }
    );
    if matches!(
        event,
        RpcCall | HookCall | DbWrite | AutoreloadRestart | SetConfig | Check | Notification
    ) && !registered
    {
        return;
    }
    if matches!(event, HookCall | DbWrite) && rig.sup.router.hook("db_write").is_empty() {
        return;
    }
    match event {
        FileSaved => rig.save(),
        FileSavedButGone => {
            rig.spawn_error = Some(SpawnError::NotFound);
            rig.save();
            rig.spawn_error = None;
        }
        CurrentGenerationExits => {
            let g = rig.gen();
            rig.exit(g, "exited with status 3");
        }
        NewestGenerationExits => {
            let newest = rig.fakes.keys().map(|&(_, g)| g).max().unwrap_or(Gen(0));
            rig.exit(newest, "exited with status 4");
        }
        AutoreloadRestart => {
            rig.request("autoreload-restart", json!({}));
        }
        AutoreloadStatus => {
            rig.request("autoreload-status", json!({}));
        }
        ShutdownNotification => rig.notify("shutdown", json!({})),
        LightningdClosed => rig.input(Input::LightningdClosed),
        RpcCall => {
            rig.request("echo", json!({}));
        }
        HookCall => {
            rig.hook("peer_connected", json!({"peer": {"id": "02aa"}}));
        }
        DbWrite => {
            rig.hook("db_write", json!({"data_version": 1, "writes": []}));
        }
        Notification => rig.notify("connect", json!({"id": "02aa"})),
        SetConfig => {
            rig.request("setconfig", json!({"config": "no-such-option", "val": 1}));
        }
        Check => {
            rig.request("check", json!({"command_to_check": "echo"}));
        }
        ResponseFromLightningd => rig.input(Input::Lightningd(frame(
            json!({"jsonrpc": "2.0", "id": "cln-autoreload:1", "result": {}}),
        ))),
        GarbageFromLightningd => rig.input(Input::Lightningd(Frame::Garbage {
            bytes: Bytes::from_static(b"}{"),
            reason: "not JSON".into(),
        })),
        LateInitAnswerFromAnOlderGeneration => {
            let g = rig.gen();
            let old = Gen(g.0.saturating_sub(1));
            rig.reports(
                old,
                InstanceEvent::Message(message(
                    json!({"jsonrpc": "2.0", "id": format!("autoreload:init#{old}"), "result": {}}),
                )),
            );
        }
        GarbageOnStdout => {
            let g = rig.gen();
            rig.reports(
                g,
                InstanceEvent::Garbage {
                    bytes: Bytes::from_static(b"hello"),
                    reason: "not JSON".into(),
                },
            );
        }
        StderrLine => {
            let g = rig.gen();
            rig.reports(
                g,
                InstanceEvent::Stderr("Traceback (most recent call last):".into()),
            );
        }
        Compiled => {
            let g = rig.gen();
            rig.reports(g, InstanceEvent::Compiled(compile_record()));
        }
        Warning => {
            let g = rig.gen();
            rig.reports(g, InstanceEvent::Warn("refused a call".into()));
        }
        Reregistered => rig.input(Input::Reregistered {
            caller: None,
            outcome: Err("no wrapper".into()),
        }),
        OptimizedCodeReady => {
            let gen = rig.gen();
            rig.input(Input::Optimized {
                plugin: PluginId(0),
                gen,
                outcome: Ok(optimized()),
            })
        }
        DeadlinesPass => {
            let until = rig.now + Duration::from_secs(61);
            while rig.fire_one(until) {}
        }
    }
}

/// Every phase × every event, native and wasm: nothing lightningd sent
/// is answered twice or with an error to a hook, and once everything has
/// run its course (instances exit or answer, timers fire) nothing is left
/// unanswered and the plugin serves again (or, after a shutdown, the host
/// exits).
#[test]
fn every_phase_times_every_event_leaves_nothing_unanswered() {
    let mut rows = 0;
    for kind in KINDS {
        for &s in Setup::ALL {
            for &e in Event::ALL {
                let mut rig = Rig::of(*kind);
                rig.row = format!("{kind:?}: {s:?} × {e:?}");
                setup(&mut rig, s);
                let phase = rig.sup.plugins[PluginId(0)].phase();
                assert_eq!(
                    phase.name(),
                    s.phase(*kind),
                    "{}: the setup's phase. log {:#?}",
                    rig.row,
                    rig.logs
                );
                assert!(
                    setups_reaching(phase).contains(&s),
                    "{}: setups_reaching({}) leaves it out",
                    rig.row,
                    phase.name()
                );
                event(&mut rig, e);
                // A plugin down after failing stays down until a save.
                let down = rig.phase() == "down" && rig.sup.plugins[PluginId(0)].retry.is_none();
                if down && !rig.sup.shutting_down() {
                    rig.save();
                }
                rig.settle();
                let what = rig.row.clone();
                if e.ends_the_host() {
                    assert!(rig.sup.shutting_down(), "{what}: not shutting down");
                }
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
    assert_eq!(rows, KINDS.len() * Setup::ALL.len() * Event::ALL.len());
}
