//! Getting lightningd to register a changed manifest without restarting
//! lightningd.
//!
//! lightningd reads a plugin's manifest once, when it starts the plugin.
//! For a dynamic plugin, `plugin start PATH` on a running plugin whose
//! file's *content* changed makes lightningd kill it and start it again,
//! reading the manifest afresh. cln-autoreload's own binary does not
//! change, but a wrapper script that runs it can: so the host finds the
//! wrapper lightningd started it from, changes a marker line in it, and
//! asks lightningd to `plugin start` it.
//!
//! Owns: finding that wrapper, marking it changed, and asking lightningd
//! (through [`crate::rpc`]) to start it. Must not: decide whether to
//! re-register (the supervisor does) or block the host's loop.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const MARKER: &str = "# cln-autoreload re-registration: ";

/// How to run cln-autoreload so it can re-register itself.
pub const HOW: &str = "run cln-autoreload from a wrapper script (#!/bin/sh + exec /path/to/cln-autoreload /path/to/plugin \"$@\") started as a dynamic plugin";

/// Finds, among the plugins lightningd lists (`plugin list`), the wrapper
/// script that runs this host: an active plugin file that is a script
/// naming this binary and one of the managed plugins.
pub fn find_wrapper(list: &Value, exe: &Path, managed: &[PathBuf]) -> Result<PathBuf, String> {
    let exe_real = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf());
    let exe_name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut direct = false;
    let mut found = vec![];
    for entry in list
        .get("plugins")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if entry.get("active") == Some(&Value::Bool(false)) {
            continue;
        }
        let Some(name) = entry.get("name").and_then(Value::as_str) else {
            continue;
        };
        let path = PathBuf::from(name);
        if std::fs::canonicalize(&path).is_ok_and(|p| p == exe_real) {
            direct = true;
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let names_us =
            text.contains(exe_real.to_string_lossy().as_ref()) || text.contains(&exe_name);
        let names_plugin = managed.iter().any(|m| {
            text.contains(m.to_string_lossy().as_ref())
                || m.file_name()
                    .is_some_and(|n| text.contains(n.to_string_lossy().as_ref()))
        });
        if text.starts_with("#!") && names_us && names_plugin {
            found.push(path);
        }
    }
    match (found.len(), direct) {
        (1, _) => Ok(found.remove(0)),
        (0, true) => Err(format!(
            "lightningd started cln-autoreload itself (--plugin=...), and it re-reads a manifest only when the plugin's file changes; to re-register without restarting lightningd, {HOW}"
        )),
        (0, false) => Err(format!("none of lightningd's plugins is a wrapper script running this cln-autoreload; {HOW}")),
        _ => Err(format!(
            "several wrapper scripts could be this cln-autoreload: {}",
            found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Changes the wrapper's content (a marker comment), atomically and
/// keeping its mode, so lightningd sees a changed plugin.
pub fn mark_changed(wrapper: &Path, stamp: u64) -> std::io::Result<()> {
    let text = std::fs::read_to_string(wrapper)?;
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.starts_with(MARKER)).collect();
    let marker = format!("{MARKER}{stamp}");
    lines.push(&marker);
    let mut out = lines.join("\n");
    out.push('\n');
    let perms = std::fs::metadata(wrapper)?.permissions();
    let tmp = wrapper.with_extension("autoreload-tmp");
    std::fs::write(&tmp, out)?;
    std::fs::set_permissions(&tmp, perms)?;
    std::fs::rename(&tmp, wrapper)
}

/// Finds the wrapper lightningd started the host from (in lightningd's
/// `plugin list`, the entry that runs this binary for `managed`) and
/// marks it changed, so that `plugin start` on it restarts the host.
pub async fn prepare(socket: &Path, managed: &[PathBuf]) -> Result<PathBuf, String> {
    let list = crate::rpc::call(socket, "plugin", json!({"subcommand": "list"}))
        .await
        .map_err(|e| format!("{e:#}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot tell its own path: {e}"))?;
    let wrapper = find_wrapper(&list, &exe, managed)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    mark_changed(&wrapper, stamp)
        .map_err(|e| format!("cannot change {}: {e}", wrapper.display()))?;
    Ok(wrapper)
}

/// Asks lightningd to `plugin start` the wrapper: it kills the host and
/// starts it again, reading the manifest afresh.
pub async fn restart_through(socket: &Path, wrapper: &Path) -> Result<(), String> {
    crate::rpc::call(
        socket,
        "plugin",
        json!({"subcommand": "start", "plugin": wrapper}),
    )
    .await
    .map(drop)
    .map_err(|e| format!("lightningd refused to restart it: {e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_wrapper_and_marks_it_changed() {
        let dir = std::env::temp_dir().join(format!("rereg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("cln-autoreload");
        std::fs::write(&exe, "binary").unwrap();
        let wrapper = dir.join("w.sh");
        let plugin = dir.join("p.py");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {} {} \"$@\"\n",
                exe.display(),
                plugin.display()
            ),
        )
        .unwrap();
        let other = dir.join("other.sh");
        std::fs::write(&other, "#!/bin/sh\nexec something-else\n").unwrap();
        let list = json!({"plugins": [
            {"name": other, "active": true},
            {"name": wrapper, "active": true},
        ]});
        assert_eq!(
            find_wrapper(&list, &exe, std::slice::from_ref(&plugin)),
            Ok(wrapper.clone())
        );
        let before = std::fs::read_to_string(&wrapper).unwrap();
        mark_changed(&wrapper, 1).unwrap();
        mark_changed(&wrapper, 2).unwrap();
        let after = std::fs::read_to_string(&wrapper).unwrap();
        assert_eq!(after, format!("{before}{MARKER}2\n"));
        let direct = json!({"plugins": [{"name": exe, "active": true}]});
        assert!(find_wrapper(&direct, &exe, &[plugin])
            .unwrap_err()
            .contains("wrapper script"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
