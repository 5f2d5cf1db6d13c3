//! The awkward rows one by one, with what must happen.

use super::rig::*;
use super::table::*;

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
    let mut rig = Rig::of(PluginKind::native(ReloadMode::Cold, false));
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
    let epoch = rig.sup.plugins[PluginId(0)].epoch();
    event(&mut rig, Event::LateInitAnswerFromAnOlderGeneration);
    assert_eq!((rig.gen(), rig.phase()), (now, "serving"));
    assert_eq!(rig.sup.plugins[PluginId(0)].epoch(), epoch);
}

#[test]
fn shutdown_during_a_back_off_starts_nothing_and_exits() {
    let mut rig = Rig::new(&["/p/plugin.py"]);
    setup(&mut rig, Setup::DownBackingOff);
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
    setup(&mut rig, Setup::DownAfterACrashLoop);
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
                .phase()
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
fn hand_over_with_a_call_in_flight(kind: PluginKind) {
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
        hand_over_with_a_call_in_flight(PluginKind::native(mode, true));
        hand_over_with_a_call_in_flight(PluginKind::wasm(mode, true));
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
    let mut rig = Rig::of(PluginKind::native(ReloadMode::Overlap, true));
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
    let mut rig = Rig::of(PluginKind::wasm(ReloadMode::Overlap, true));
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
    let mut rig = Rig::of(PluginKind::native(ReloadMode::Overlap, true));
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
    let mut rig = Rig::of(PluginKind::native(ReloadMode::Cold, true));
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
    let mut rig = Rig::of(PluginKind::native(ReloadMode::Overlap, true));
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
    let mut rig = Rig::of(PluginKind::native(ReloadMode::Warm, false));
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
        PluginKind::native(ReloadMode::Warm, true),
        PluginKind::wasm(ReloadMode::Warm, true),
        PluginKind::native(ReloadMode::Cold, true),
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
        assert_eq!(
            rig.sources[&back],
            crate::supervisor::Source::Kept(old),
            "{kind:?}"
        );
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
    let mut rig = Rig::of(PluginKind::native(ReloadMode::Warm, false));
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
    assert_eq!(rig.sources[&rig.gen()], crate::supervisor::Source::File);
    rig.nothing_waits();
}

#[test]
fn a_new_version_that_dies_while_the_old_one_drains_leaves_the_old_one_serving() {
    let mut rig = Rig::of(PluginKind::native(ReloadMode::Warm, false));
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
    let mut rig = Rig::of(PluginKind::native(ReloadMode::Warm, false));
    rig.boot();
    let (old, next) = warm_up(&mut rig);
    assert_eq!(rig.phase(), "stopping");
    rig.exit(next, "exited with status 1");
    let call = rig.request("echo", json!({}));
    rig.settle();
    assert_eq!(rig.phase(), "serving");
    assert_eq!(
        rig.sources[&rig.gen()],
        crate::supervisor::Source::Kept(old)
    );
    assert!(rig.answered.contains(&call));
    rig.nothing_waits();
}

#[test]
fn a_conflict_in_an_init_error_answer_makes_a_full_overlap_reload_warm() {
    let mut rig = Rig::of(PluginKind::native(ReloadMode::Overlap, false));
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
        let mut rig = Rig::of(PluginKind::native(mode, false));
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
    let mut rig = Rig::of(PluginKind::native(ReloadMode::Warm, false));
    rig.boot();
    let (old, next) = warm_up(&mut rig);
    assert_eq!(rig.phase(), "stopping");
    rig.exit(next, "exited with status 1");
    // The fix is saved before the old version is back.
    rig.save();
    rig.settle();
    assert_eq!(rig.phase(), "serving");
    let newest = rig.gen();
    assert_eq!(
        rig.sources[&newest],
        crate::supervisor::Source::File,
        "{:#?}",
        rig.logs
    );
    assert!(
        rig.sources
            .values()
            .any(|s| *s == crate::supervisor::Source::Kept(old)),
        "the old version came back first"
    );
    rig.nothing_waits();
}

/// A wasm plugin of `kind` whose first generation, compiled by Winch,
/// serves; that generation.
fn serving_winch_code(kind: PluginKind) -> (Rig, Gen) {
    let mut rig = Rig::of(kind);
    rig.getmanifest();
    let first = rig.gen();
    rig.reports(first, InstanceEvent::Compiled(compile_record()));
    rig.answer(first, "getmanifest");
    rig.init();
    rig.settle();
    assert_eq!(rig.phase(), "serving");
    (rig, first)
}

#[test]
fn optimized_code_swaps_in_for_a_plugin_that_keeps_its_state() {
    for mode in [ReloadMode::Warm, ReloadMode::Overlap, ReloadMode::Cold] {
        let (mut rig, first) = serving_winch_code(PluginKind::wasm(mode, true));
        // The supervisor asks for the optimized code of that generation.
        assert_eq!(rig.optimize_asked, vec![first], "{mode:?}");
        let call = rig.request("echo", json!({}));
        rig.input(Input::Optimized {
            plugin: PluginId(0),
            gen: first,
            outcome: Ok(optimized()),
        });
        rig.answer(first, "echo");
        rig.settle();
        // The same version, from its kept copy, with the state handed over.
        let now = rig.gen();
        assert!(now > first, "{mode:?}: {:#?}", rig.logs);
        assert_eq!(rig.sources[&now], crate::supervisor::Source::Kept(first));
        assert_eq!(rig.restored.get(&now), Some(&json!({"saved_by": first})));
        assert!(rig.answered.contains(&call));
        let status = rig.sup.plugin_status(PluginId(0));
        assert_eq!(status["tier_ups"], 1, "{status:#}");
        assert_eq!(
            status["reloads"], 0,
            "a tier-up is not a reload: {status:#}"
        );
        assert!(rig.logged("optimized code (Cranelift) serves"));
        // Its code is Cranelift's: nothing more is asked for.
        assert_eq!(rig.optimize_asked, vec![first]);
        rig.nothing_waits();
    }
}

#[test]
fn optimized_code_waits_for_the_next_start_of_a_plugin_without_state() {
    let (mut rig, first) = serving_winch_code(PluginKind::wasm(ReloadMode::Warm, false));
    assert!(
        rig.optimize_asked.is_empty(),
        "a swap would lose its memory"
    );
    // Ready all the same (another plugin's bytes): nothing swaps.
    rig.input(Input::Optimized {
        plugin: PluginId(0),
        gen: first,
        outcome: Ok(optimized()),
    });
    assert_eq!(rig.gen(), first);
    rig.nothing_waits();
}

#[test]
fn optimized_code_for_a_version_replaced_meanwhile_changes_nothing() {
    let (mut rig, first) = serving_winch_code(PluginKind::wasm(ReloadMode::Warm, true));
    rig.save();
    rig.settle();
    let now = rig.gen();
    assert!(now > first);
    for outcome in [
        Ok(optimized()),
        Err(crate::backend::wasm::OptimizeError::Compile("no".into())),
    ] {
        rig.input(Input::Optimized {
            plugin: PluginId(0),
            gen: first,
            outcome,
        });
        rig.settle();
        assert_eq!(rig.gen(), now);
    }
    rig.nothing_waits();
}
