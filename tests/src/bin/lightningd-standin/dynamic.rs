//! `plugin start` and `plugin stop`, as lightningd does them at runtime.

use crate::ld::{env_secs, Ld, Phase, Reply};
use crate::logbook::Level;
use crate::plugins;
use crate::proto::{error_response, make_id, ok_response, quote, raw_str};
use crate::rpc::{plugin_list_json, Params, Req};
use cln_protocol::errors::INVALID_PARAMS;
use std::path::Path;
use std::sync::Arc;

/// lightningd's PLUGIN_ERROR.
const PLUGIN_ERROR: i64 = -3;

fn killed_because(ld: &Ld, idx: usize) -> String {
    ld.st()
        .plugins
        .get(idx)
        .and_then(|p| p.killed_because.clone())
        .unwrap_or_else(|| "plugin exited".into())
}

fn alive(ld: &Ld, idx: usize) -> bool {
    ld.st().plugins.get(idx).is_some_and(|p| p.alive)
}

pub async fn start(ld: &Arc<Ld>, req: &Req, p: &Params) -> Vec<u8> {
    let id = req.id_raw.as_str();
    let Some(given) = p.string("plugin", 1) else {
        return error_response(id, INVALID_PARAMS, "missing required parameter: plugin");
    };
    // Relative paths are relative to lightningd's directory, then to
    // <lightning-dir>/plugins.
    let candidates = [
        ld.cfg.netdir.join(&given),
        ld.cfg
            .netdir
            .parent()
            .unwrap_or(Path::new("/"))
            .join("plugins")
            .join(&given),
    ];
    let Some(path) = candidates
        .iter()
        .find_map(|c| std::fs::canonicalize(c).ok())
    else {
        return error_response(
            id,
            PLUGIN_ERROR,
            &format!("{given}: No such file or directory"),
        );
    };
    let path_s = path.to_string_lossy().into_owned();
    // Already running: the same file is refused, a changed one restarted.
    let running = ld
        .st()
        .plugins
        .iter()
        .position(|pl| pl.alive && pl.path == path_s);
    if let Some(old) = running {
        let (same, important) = ld
            .st()
            .plugins
            .get(old)
            .map(|pl| (pl.checksum == plugins::file_checksum(&path), pl.important))
            .unwrap_or((true, false));
        if same || important {
            return error_response(id, PLUGIN_ERROR, &format!("{path_s}: already registered"));
        }
        ld.kill_plugin(old, Level::Info, "Plugin changed, needs restart.");
    }
    let fail = |why: &str| error_response(id, PLUGIN_ERROR, &format!("{path_s}: {why}"));
    let idx = match plugins::start_plugin(ld, &path, false) {
        Ok(i) => i,
        Err(e) => return fail(&e),
    };
    let timeout = env_secs("STANDIN_STARTUP_TIMEOUT_SECS", 120);

    let mid = make_id(Some(&req.id_text), "getmanifest", ld.next_id());
    let msg = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{mid},\"method\":\"getmanifest\",\"params\":{{\"allow-deprecated-apis\":{}}}}}\n\n",
        ld.cfg.deprecated_apis
    );
    let rx = ld.send_request(idx, &mid, msg.into_bytes());
    req.gate.open();
    let raw = match tokio::time::timeout(timeout, rx).await {
        Err(_) => {
            ld.kill_plugin(
                idx,
                Level::Unusual,
                "timed out before replying to getmanifest",
            );
            return fail(&killed_because(ld, idx));
        }
        Ok(Ok(Reply::Msg(raw))) => raw,
        Ok(_) => return fail(&killed_because(ld, idx)),
    };
    let _ = plugins::apply_manifest(ld, idx, &raw, false);
    if !alive(ld, idx) {
        return fail(&killed_because(ld, idx));
    }
    // Values from the config files and command line, then those given
    // with the start command.
    if let Err(e) = plugins::resolve_options(ld, Some(idx)) {
        ld.kill_plugin(idx, Level::Unusual, &e);
        return fail(&killed_because(ld, idx));
    }
    for (k, v) in p.obj.iter() {
        if k == "subcommand" || k == "plugin" {
            continue;
        }
        let text = raw_str(v).unwrap_or_else(|| v.get().to_string());
        let mut st = ld.st();
        let Some(pl) = st.plugins.get_mut(idx) else {
            break;
        };
        let Some(opt) = pl.m.options.iter().find(|o| o.name == *k).cloned() else {
            drop(st);
            ld.kill_plugin(idx, Level::Unusual, &format!("unknown parameter {k}"));
            return fail(&killed_because(ld, idx));
        };
        let Some(val) = opt.typ.value(&text) else {
            drop(st);
            ld.kill_plugin(
                idx,
                Level::Unusual,
                &format!("{text} does not parse as type {}", opt.typ.name()),
            );
            return fail(&killed_because(ld, idx));
        };
        let vals = pl.values.entry(opt.name.clone()).or_default();
        if !opt.multi {
            vals.clear();
        }
        vals.push(val);
    }
    plugins::order_hooks(ld);
    if !alive(ld, idx) {
        return fail(&killed_because(ld, idx));
    }

    let Some((iid, msg)) = plugins::init_request(ld, idx, false) else {
        return fail("vanished");
    };
    if let Some(pl) = ld.st().plugins.get_mut(idx) {
        pl.phase = Phase::Init;
    }
    let rx = ld.send_request(idx, &iid, msg);
    match tokio::time::timeout(timeout, rx).await {
        Err(_) => {
            ld.kill_plugin(idx, Level::Unusual, "timed out before replying to init");
            return fail(&killed_because(ld, idx));
        }
        Ok(Ok(Reply::Msg(raw))) => plugins::apply_init(ld, idx, &raw),
        Ok(_) => {}
    }
    if !alive(ld, idx) {
        return fail(&killed_because(ld, idx));
    }
    ok_response(
        id,
        &format!(
            "{{\"command\":\"start\",\"plugins\":{}}}",
            plugin_list_json(ld)
        ),
    )
}

pub async fn stop(ld: &Arc<Ld>, req: &Req, p: &Params) -> Vec<u8> {
    let id = req.id_raw.as_str();
    let Some(name) = p.string("plugin", 1) else {
        return error_response(id, INVALID_PARAMS, "missing required parameter: plugin");
    };
    let want = if name.contains('/') {
        std::fs::canonicalize(ld.cfg.netdir.join(&name))
            .ok()
            .map(|c| c.to_string_lossy().into_owned())
    } else {
        None
    };
    let found = ld.st().plugins.iter().position(|pl| {
        pl.alive
            && match &want {
                Some(w) => pl.path == *w,
                None => pl.name == name,
            }
    });
    let Some(idx) = found else {
        return error_response(id, INVALID_PARAMS, &format!("Could not find plugin {name}"));
    };
    let (dynamic, short, notify, gone) = match ld.st().plugins.get(idx) {
        Some(pl) => (
            pl.m.dynamic,
            pl.name.clone(),
            pl.active() && pl.subscribed("shutdown"),
            pl.gone.clone(),
        ),
        None => {
            return error_response(id, INVALID_PARAMS, &format!("Could not find plugin {name}"))
        }
    };
    // plugin_control.c plugin_dynamic_stop: only `dynamic` matters; an
    // important plugin is made unimportant first ("Don't freak out, even
    // if it's a built-in").
    if !dynamic {
        return error_response(
            id,
            INVALID_PARAMS,
            &format!("{name} cannot be managed when lightningd is up"),
        );
    }
    if let Some(pl) = ld.st().plugins.get_mut(idx) {
        pl.important = false;
    }
    req.gate.open();
    // notify_plugin_shutdown, then up to 30 s for it to exit by itself
    // (plugin_stop_timeout); the shutdown notification's bytes are the
    // trace's (`dynamic-start.stdin.raw`).
    if notify {
        let msg = b"{\"jsonrpc\":\"2.0\",\"method\":\"shutdown\",\"params\":{\"shutdown\":{}}}\n\n";
        let sent = ld
            .st()
            .plugins
            .get(idx)
            .and_then(|pl| pl.stdin.as_ref().map(|s| s.send(msg.to_vec()).is_ok()))
            .unwrap_or(false);
        if sent {
            let mut gone = gone;
            let _ = tokio::time::timeout(
                env_secs("STANDIN_SHUTDOWN_TIMEOUT_SECS", 30),
                gone.wait_for(|v| *v),
            )
            .await;
        }
    }
    ld.kill_plugin(idx, Level::Info, "stopped by lightningd via RPC");
    plugins::order_hooks(ld);
    ok_response(
        id,
        &format!(
            "{{\"command\":\"stop\",\"result\":{}}}",
            quote(&format!("Successfully stopped {short}."))
        ),
    )
}
