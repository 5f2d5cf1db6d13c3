//! Build on save: what to rebuild when a plugin's sources change, and
//! running that build.
//!
//! Owns: binding `autoreload-build`/`autoreload-watch` values to plugins,
//! inferring a build from where the plugin file lives (a cargo artifact
//! under `target/`), and running a build command. Must not: reload
//! anything (a build rewrites the plugin file; the file watcher does the
//! rest) or block the event loop.

use crate::options::{PerPlugin, BIND};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncBufReadExt, BufReader};

/// How long a build may run before it is stopped.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(600);
const MAX_LINES: usize = 2000;

/// What to do when a plugin's sources change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spec {
    /// The build command (`sh -c`), or none: a source change is a reload
    /// (Python modules, say).
    pub command: Option<String>,
    /// Where the build runs.
    pub cwd: PathBuf,
    /// Directories watched, recursively.
    pub watch: Vec<PathBuf>,
    /// Paths inside them that do not count (build outputs, the plugin
    /// file itself).
    pub ignore: Vec<PathBuf>,
    /// Only these extensions count (empty: every file).
    pub extensions: Vec<String>,
    /// Inferred rather than given.
    pub inferred: bool,
}

impl Spec {
    /// For `autoreload-status`.
    pub fn to_json(&self) -> Value {
        json!({
            "command": self.command,
            "cwd": self.cwd,
            "watching": self.watch,
            "inferred": self.inferred,
        })
    }
}

/// Splits option values by plugin: `NAME::VALUE` binds to the plugin whose
/// file name is NAME; a value without a known NAME binds, whole, to the
/// first plugin (a command may hold `::` of its own). Returns one list
/// per plugin, and warnings.
pub fn bind(values: &[String], names: &[String]) -> (Vec<Vec<String>>, Vec<String>) {
    let mut out = vec![vec![]; names.len()];
    let mut warnings = vec![];
    for v in PerPlugin::parse(values, |_| ()).iter() {
        let named = v
            .plugin
            .as_ref()
            .and_then(|n| names.iter().position(|x| x == n));
        match named {
            Some(i) => out[i].push(v.text.clone()),
            None if names.is_empty() => {}
            None => {
                if names.len() > 1 {
                    warnings.push(format!(
                        "'{}' names no plugin: it applies to {}. Write PLUGIN{BIND}VALUE to choose",
                        v.raw, names[0]
                    ));
                }
                out[0].push(v.raw.clone());
            }
        }
    }
    (out, warnings)
}

/// Where a plugin file sits in a cargo project: `<root>/target/[<triple>/]
/// <profile>/<bin>[.wasm]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CargoArtifact {
    /// The directory holding `target/` and `Cargo.toml`.
    pub root: PathBuf,
    /// `wasm32-wasip1` or another `--target`, if any.
    pub triple: Option<String>,
    /// `debug`, `release` or a custom profile.
    pub profile: String,
    /// The binary's name.
    pub bin: String,
}

/// Recognizes a cargo artifact path.
pub fn cargo_artifact(plugin: &Path) -> Option<CargoArtifact> {
    let target = plugin
        .ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "target"))?;
    let root = target.parent()?;
    if !root.join("Cargo.toml").is_file() {
        return None;
    }
    let parts: Vec<String> = plugin
        .strip_prefix(target)
        .ok()?
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let (triple, profile, file) = match parts.as_slice() {
        [profile, file] => (None, profile.clone(), file.clone()),
        [triple, profile, file] => (Some(triple.clone()), profile.clone(), file.clone()),
        _ => return None,
    };
    let bin = file.strip_suffix(".wasm").unwrap_or(&file).to_string();
    Some(CargoArtifact {
        root: root.to_path_buf(),
        triple,
        profile,
        bin,
    })
}

/// The build for a cargo artifact: which package has that binary (from
/// `cargo metadata`), the command that rebuilds it, and the sources to
/// watch (the package and its path dependencies).
pub async fn infer_cargo(a: &CargoArtifact) -> Result<Spec, String> {
    let out = tokio::process::Command::new("cargo")
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(&a.root)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let meta: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    let package = packages
        .iter()
        .find(|p| {
            p["targets"].as_array().into_iter().flatten().any(|t| {
                t["name"] == a.bin.as_str()
                    && t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "bin"))
            })
        })
        .ok_or_else(|| {
            format!(
                "no package in {} builds a binary named {}",
                a.root.display(),
                a.bin
            )
        })?;
    let name = package["name"].as_str().unwrap_or_default();
    let dir = |manifest: &Value| {
        manifest
            .as_str()
            .and_then(|m| Path::new(m).parent().map(Path::to_path_buf))
    };
    let mut watch: Vec<PathBuf> = dir(&package["manifest_path"]).into_iter().collect();
    for dep in package["dependencies"].as_array().into_iter().flatten() {
        if let Some(p) = dep["path"].as_str().map(PathBuf::from) {
            if !watch.iter().any(|w| p.starts_with(w)) {
                watch.push(p);
            }
        }
    }
    let mut command = String::from("cargo build");
    if let Some(t) = &a.triple {
        command.push_str(&format!(" --target {t}"));
    }
    match a.profile.as_str() {
        "debug" => {}
        "release" => command.push_str(" --release"),
        other => command.push_str(&format!(" --profile {other}")),
    }
    command.push_str(&format!(" -p {name} --bin {}", a.bin));
    let target_dir = meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_else(|| a.root.join("target"));
    Ok(Spec {
        command: Some(command),
        cwd: a.root.clone(),
        watch,
        ignore: vec![target_dir],
        extensions: vec![],
        inferred: true,
    })
}

/// The project directory of a plugin given an explicit build command: the
/// nearest ancestor (outside `target/`) with a project file, else the
/// plugin's own directory.
pub fn project_dir(plugin: &Path) -> PathBuf {
    const MARKERS: &[&str] = &[
        "Cargo.toml",
        "package.json",
        "Makefile",
        "go.mod",
        "pyproject.toml",
    ];
    let start = plugin
        .ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "target"))
        .and_then(Path::parent)
        .or_else(|| plugin.parent())
        .unwrap_or(Path::new("/"));
    start
        .ancestors()
        .find(|d| MARKERS.iter().any(|m| d.join(m).is_file()))
        .unwrap_or(start)
        .to_path_buf()
}

/// How a build ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// It exited with status 0.
    pub ok: bool,
    /// Its output, stdout and stderr interleaved, line by line.
    pub lines: Vec<String>,
    /// How long it took.
    pub duration: Duration,
    /// When it ended.
    pub at: SystemTime,
    /// The status, in words.
    pub status: String,
}

impl Outcome {
    /// For `autoreload-status`: the last lines of a failed build.
    pub fn to_json(&self) -> Value {
        let tail: Vec<&String> = if self.ok {
            vec![]
        } else {
            self.lines.iter().rev().take(30).rev().collect()
        };
        json!({
            "ok": self.ok,
            "status": self.status,
            "duration_ms": self.duration.as_secs_f64() * 1000.0,
            "at": self.at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "output": tail,
        })
    }
}

/// Runs `sh -c command` in `cwd`, collecting its output; bounded by
/// [`BUILD_TIMEOUT`].
pub async fn run(command: &str, cwd: &Path) -> Outcome {
    let start = Instant::now();
    let done = |ok, lines, status: String| Outcome {
        ok,
        lines,
        duration: start.elapsed(),
        at: SystemTime::now(),
        status,
    };
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(cwd)
        .env("CARGO_TERM_COLOR", "never")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return done(
                false,
                vec![],
                format!("cannot run it in {}: {e}", cwd.display()),
            )
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for out in [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let _ = tx.send(l);
            }
        });
    }
    drop(tx);
    let collect = async {
        let mut lines = vec![];
        while let Some(l) = rx.recv().await {
            if lines.len() < MAX_LINES {
                lines.push(l);
            }
        }
        let status = child.wait().await;
        (lines, status)
    };
    match tokio::time::timeout(BUILD_TIMEOUT, collect).await {
        Ok((lines, Ok(s))) => done(s.success(), lines, s.to_string()),
        Ok((lines, Err(e))) => done(false, lines, format!("could not be waited for: {e}")),
        Err(_) => done(
            false,
            vec![],
            format!("took longer than {}s: stopped", BUILD_TIMEOUT.as_secs()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_bind_to_plugins_by_name() {
        let names = vec!["a.wasm".to_string(), "b.py".to_string()];
        let (b, w) = bind(
            &[
                "b.py::make".into(),
                "cargo build".into(),
                "a.wasm::x::y".into(),
            ],
            &names,
        );
        assert_eq!(
            b,
            vec![
                vec!["cargo build".to_string(), "x::y".to_string()],
                vec!["make".to_string()]
            ]
        );
        assert_eq!(w.len(), 1);
        let (b, w) = bind(&["cargo build".into()], &names[..1]);
        assert_eq!((b, w.len()), (vec![vec!["cargo build".to_string()]], 0));
        // A prefix naming no plugin is part of the command, for the first.
        let (b, w) = bind(&["echo a::b".into()], &names);
        assert_eq!(b[0], vec!["echo a::b".to_string()]);
        assert!(w[0].contains("'echo a::b' names no plugin"), "{w:?}");
    }

    #[test]
    fn cargo_artifacts_are_recognized() {
        let root = std::env::temp_dir().join(format!("art-{}", std::process::id()));
        std::fs::create_dir_all(root.join("target/wasm32-wasip1/release")).unwrap();
        std::fs::write(root.join("Cargo.toml"), "[workspace]\n").unwrap();
        let a = cargo_artifact(&root.join("target/wasm32-wasip1/release/hello-wasm.wasm")).unwrap();
        assert_eq!(
            (a.triple.as_deref(), a.profile.as_str(), a.bin.as_str()),
            (Some("wasm32-wasip1"), "release", "hello-wasm")
        );
        let n = cargo_artifact(&root.join("target/debug/my-plugin")).unwrap();
        assert_eq!(
            (n.triple, n.profile.as_str(), n.bin.as_str()),
            (None, "debug", "my-plugin")
        );
        assert!(cargo_artifact(&root.join("plugin.py")).is_none());
        assert_eq!(project_dir(&root.join("target/debug/my-plugin")), root);
        let _ = std::fs::remove_dir_all(&root);
    }
}
