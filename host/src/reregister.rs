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

/// Why no wrapper to re-register through was found in lightningd's list.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoWrapper {
    /// lightningd runs the host itself (`--plugin=cln-autoreload`).
    #[error("lightningd started cln-autoreload itself (--plugin=...), and it re-reads a manifest only when the plugin's file changes; to re-register without restarting lightningd, {HOW}")]
    StartedDirectly,
    /// No plugin lightningd runs is a script naming the host.
    #[error("none of lightningd's plugins is a wrapper script running this cln-autoreload; {HOW}")]
    NoneFound,
    /// More than one script could be it.
    #[error("several wrapper scripts could be this cln-autoreload: {}", .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    Several(Vec<PathBuf>),
}

/// Why [`prepare`] could not get a wrapper ready.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// `plugin list` failed.
    #[error("{0:#}")]
    List(anyhow::Error),
    /// The host's own executable could not be found.
    #[error("cannot tell its own path: {0}")]
    OwnPath(std::io::Error),
    /// No wrapper (or several).
    #[error(transparent)]
    NoWrapper(#[from] NoWrapper),
    /// The wrapper could not be changed.
    #[error("cannot change {}: {source}", .wrapper.display())]
    Mark {
        /// The wrapper.
        wrapper: PathBuf,
        /// What writing it said.
        source: std::io::Error,
    },
}

/// lightningd did not restart the host through its wrapper.
#[derive(Debug, thiserror::Error)]
#[error("lightningd refused to restart it: {0:#}")]
pub struct RestartRefused(anyhow::Error);

/// How to run cln-autoreload so it can re-register itself.
pub const HOW: &str = "run cln-autoreload from a wrapper script (#!/bin/sh + exec /path/to/cln-autoreload /path/to/plugin \"$@\") started as a dynamic plugin";

/// Finds, among the plugins lightningd lists (`plugin list`), the wrapper
/// script that runs this host: an active plugin file that is a script
/// naming this binary and one of the managed plugins.
pub fn find_wrapper(list: &Value, exe: &Path, managed: &[PathBuf]) -> Result<PathBuf, NoWrapper> {
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
        (0, true) => Err(NoWrapper::StartedDirectly),
        (0, false) => Err(NoWrapper::NoneFound),
        _ => Err(NoWrapper::Several(found)),
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
pub async fn prepare(socket: &Path, managed: &[PathBuf]) -> Result<PathBuf, PrepareError> {
    let list = crate::rpc::call(socket, "plugin", json!({"subcommand": "list"}))
        .await
        .map_err(PrepareError::List)?;
    let exe = std::env::current_exe().map_err(PrepareError::OwnPath)?;
    let wrapper = find_wrapper(&list, &exe, managed)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    if let Err(source) = mark_changed(&wrapper, stamp) {
        return Err(PrepareError::Mark { wrapper, source });
    }
    Ok(wrapper)
}

/// Asks lightningd to `plugin start` the wrapper: it kills the host and
/// starts it again, reading the manifest afresh.
pub async fn restart_through(socket: &Path, wrapper: &Path) -> Result<(), RestartRefused> {
    crate::rpc::call(
        socket,
        "plugin",
        json!({"subcommand": "start", "plugin": wrapper}),
    )
    .await
    .map(drop)
    .map_err(RestartRefused)
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
        let e = find_wrapper(&direct, &exe, &[plugin]).unwrap_err();
        assert_eq!(e, NoWrapper::StartedDirectly);
        assert!(e.to_string().contains("wrapper script"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
