//! Finds the plugins to manage before lightningd has told us any option.
//!
//! lightningd asks for the manifest before it passes option values, yet the
//! manifest is the managed plugin's. So the paths are looked up where the
//! user wrote them: the host's own argv (a wrapper script), the
//! `AUTORELOAD_PLUGIN` environment variable, lightningd's command line, and
//! lightningd's config files. Relative paths are resolved against the
//! directory lightningd was launched from (the shell's `PWD`, which
//! lightningd passes on), not the process's cwd: lightningd has already
//! moved into `<lightning-dir>/<network>` by then.
//!
//! Owns: reading those sources and resolving paths. Must not: check the
//! files or start anything.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The option lightningd users write.
pub const OPTION: &str = crate::options::PLUGIN.name;
/// The directories a wasm plugin may use: needed before init too, since
/// lightningd calls `db_write` there (a backup plugin writes its copy).
pub const WASM_DIR: &str = crate::options::WASM_DIR.name;

/// Whether `name` is one of the host's options needed before init (see
/// [`Located::early`]): the directories a wasm plugin may use, the native
/// sandbox (the plugin's first start, which answers getmanifest, is
/// already sandboxed), the wasm caches and compiler (the first start of a
/// wasm plugin already looks in the caches, and compiles with the
/// compiler asked for). Each option's definition says ([`crate::options::Def::early`]).
fn early(name: &str) -> bool {
    crate::options::find(name).is_some_and(|d| d.early)
}
/// Environment variable naming plugins, `:`-separated.
pub const ENV_VAR: &str = "AUTORELOAD_PLUGIN";

/// Where the paths came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The host's own command line (a wrapper script).
    Argv,
    /// The `AUTORELOAD_PLUGIN` environment variable.
    Env,
    /// lightningd's command line and config files.
    Lightningd,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Argv => "cln-autoreload's command line",
            Source::Env => "the AUTORELOAD_PLUGIN environment variable",
            Source::Lightningd => "lightningd's command line and config files",
        })
    }
}

/// The plugins found, and how.
#[derive(Debug, Clone)]
pub struct Located {
    /// Absolute paths, in the order given, without duplicates.
    pub paths: Vec<PathBuf>,
    /// Where they came from.
    pub source: Source,
    /// What the user may want to know (which base directory was used...).
    pub notes: Vec<String>,
    /// The host's options a plugin needs before init passes them
    /// (`autoreload-wasm-dir`, `autoreload-native-*`), as `(name, value)`
    /// in lightningd's order, from its command line and config files
    /// whatever named the plugins.
    pub early: Vec<(String, String)>,
}

/// Everything the locator reads, gathered up front so it can be tested.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Plugin paths given to the host itself.
    pub argv: Vec<OsString>,
    /// `AUTORELOAD_PLUGIN`.
    pub env_plugins: Option<OsString>,
    /// `PWD`: where lightningd was launched from.
    pub pwd: Option<PathBuf>,
    /// `HOME`, for the default lightning dir.
    pub home: Option<PathBuf>,
    /// The host's cwd (lightningd's `<lightning-dir>/<network>`).
    pub cwd: PathBuf,
    /// lightningd's argv, from `/proc/<ppid>/cmdline`.
    pub parent_cmdline: Option<Vec<OsString>>,
}

impl Context {
    /// Reads this process's surroundings.
    pub fn from_process(argv: Vec<OsString>) -> Context {
        let parent = std::os::unix::process::parent_id();
        let parent_cmdline = std::fs::read(format!("/proc/{parent}/cmdline"))
            .ok()
            .map(|b| split_nul(&b));
        Context {
            argv,
            env_plugins: std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()),
            pwd: std::env::var_os("PWD").map(PathBuf::from),
            home: std::env::var_os("HOME").map(PathBuf::from),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            parent_cmdline,
        }
    }

    /// The base for relative paths, and a note when it is a fallback.
    fn base(&self) -> (PathBuf, Option<String>) {
        match &self.pwd {
            Some(p) if p.is_absolute() && p.is_dir() => (p.clone(), None),
            _ => (
                self.cwd.clone(),
                Some(format!(
                    "PWD is not set (started by systemd?): relative plugin paths are taken relative to {}; use absolute paths to be sure",
                    self.cwd.display()
                )),
            ),
        }
    }
}

fn split_nul(b: &[u8]) -> Vec<OsString> {
    b.split(|&c| c == 0)
        .filter(|s| !s.is_empty())
        .map(|s| OsString::from(std::ffi::OsStr::from_bytes(s)))
        .collect()
}

/// Finds the plugins to manage; `None` when no source names any.
pub fn locate(ctx: &Context) -> Option<Located> {
    let (base, base_note) = ctx.base();
    let from_lightningd = on_lightningd_message(ctx);
    let early = from_lightningd.early;
    let (raw, source, mut notes) = if !ctx.argv.is_empty() {
        (
            ctx.argv.iter().map(PathBuf::from).collect(),
            Source::Argv,
            vec![],
        )
    } else if let Some(v) = &ctx.env_plugins {
        (std::env::split_paths(v).collect(), Source::Env, vec![])
    } else {
        if from_lightningd.plugins.is_empty() {
            return None;
        }
        (
            from_lightningd.plugins,
            Source::Lightningd,
            from_lightningd.notes,
        )
    };
    let mut paths: Vec<PathBuf> = vec![];
    let mut relative = false;
    for p in raw {
        relative |= p.is_relative();
        let abs = normalize(&base.join(p));
        if !paths.contains(&abs) {
            paths.push(abs);
        }
    }
    if relative {
        notes.push(match base_note {
            Some(n) => n,
            None => format!(
                "relative plugin paths resolved against {} (PWD)",
                base.display()
            ),
        });
    }
    Some(Located {
        paths,
        source,
        notes,
        early,
    })
}

/// Removes `.` and `..` without touching the file system, so a symlinked
/// build output is watched where the user pointed, not where it leads.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// What lightningd's command line says about us and its config.
#[derive(Default)]
struct Cmdline {
    plugins: Vec<PathBuf>,
    lightning_dir: Option<PathBuf>,
    conf: Option<PathBuf>,
    network: Option<String>,
    /// The options needed before init, with their values.
    early: Vec<(String, String)>,
}

fn parse_cmdline(args: &[OsString]) -> Cmdline {
    let mut c = Cmdline::default();
    let mut it = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = it.next() {
        let Some(opt) = arg.strip_prefix("--") else {
            continue;
        };
        let (name, inline) = match opt.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (opt.to_string(), None),
        };
        match name.as_str() {
            "regtest" | "testnet" | "signet" | "testnet4" => c.network = Some(name.clone()),
            "mainnet" => c.network = Some("bitcoin".into()),
            OPTION | "lightning-dir" | "conf" | "network" => {
                let Some(value) = inline.or_else(|| it.next()) else {
                    continue;
                };
                match name.as_str() {
                    OPTION => c.plugins.push(PathBuf::from(value)),
                    "lightning-dir" => c.lightning_dir = Some(PathBuf::from(value)),
                    "conf" => c.conf = Some(PathBuf::from(value)),
                    _ => c.network = Some(value),
                }
            }
            n if early(n) => {
                if let Some(value) = inline.or_else(|| it.next()) {
                    c.early.push((name.clone(), value));
                }
            }
            _ => {}
        }
    }
    c
}

/// Options found in config files, in reading order.
#[derive(Default)]
struct ConfigValues {
    plugins: Vec<PathBuf>,
    network: Option<String>,
    files_read: Vec<PathBuf>,
    early: Vec<(String, String)>,
}

fn read_config(path: &Path, out: &mut ConfigValues, depth: usize) {
    if depth > 16 {
        return; // an include loop
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    out.files_read.push(path.to_path_buf());
    let dir = path.parent().unwrap_or(Path::new("/"));
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(inc) = line.strip_prefix("include ") {
            read_config(&dir.join(inc.trim()), out, depth + 1);
            continue;
        }
        let (name, value) = line
            .split_once('=')
            .map_or((line, ""), |(n, v)| (n.trim(), v.trim()));
        match name {
            OPTION if !value.is_empty() => out.plugins.push(PathBuf::from(value)),
            "network" if !value.is_empty() => out.network = Some(value.to_string()),
            "regtest" | "testnet" | "signet" | "testnet4" => out.network = Some(name.to_string()),
            "mainnet" => out.network = Some("bitcoin".into()),
            n if early(n) => out.early.push((n.to_string(), value.to_string())),
            _ => {}
        }
    }
}

/// What lightningd's command line and config files say.
#[derive(Default)]
struct FromLightningd {
    plugins: Vec<PathBuf>,
    /// The options needed before init, config files first.
    early: Vec<(String, String)>,
    notes: Vec<String>,
}

fn on_lightningd_message(ctx: &Context) -> FromLightningd {
    let Some(args) = &ctx.parent_cmdline else {
        return FromLightningd::default();
    };
    let (base, _) = ctx.base();
    let cmd = parse_cmdline(args);
    let dir = match (&cmd.lightning_dir, &ctx.home) {
        (Some(d), _) => base.join(d),
        (None, Some(h)) => h.join(".lightning"),
        (None, None) => {
            return FromLightningd {
                plugins: cmd.plugins,
                early: cmd.early,
                notes: vec![],
            }
        }
    };
    let mut cfg = ConfigValues::default();
    let top = cmd
        .conf
        .as_ref()
        .map(|c| base.join(c))
        .unwrap_or_else(|| dir.join("config"));
    read_config(&top, &mut cfg, 0);
    let network = cmd
        .network
        .clone()
        .or_else(|| cfg.network.clone())
        .unwrap_or_else(|| "bitcoin".into());
    read_config(&dir.join(&network).join("config"), &mut cfg, 0);
    let mut notes = vec![];
    if !cfg.plugins.is_empty() {
        notes.push(format!(
            "found {OPTION} in {}",
            cfg.files_read
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // Like lightningd: config file values first, then the command line's.
    let mut plugins = cfg.plugins;
    plugins.extend(cmd.plugins);
    let mut early = cfg.early;
    early.extend(cmd.early);
    FromLightningd {
        plugins,
        early,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn ctx(dir: &Path) -> Context {
        Context {
            pwd: Some(dir.to_path_buf()),
            home: Some(dir.join("home")),
            cwd: PathBuf::from("/"),
            ..Context::default()
        }
    }

    #[test]
    fn cmdline_both_forms_resolved_against_pwd() {
        let dir = std::env::temp_dir();
        let mut c = ctx(&dir);
        c.parent_cmdline = Some(os(&[
            "lightningd",
            "--autoreload-plugin=a/x.py",
            "--foo",
            "--autoreload-plugin",
            "/abs/y",
            "--autoreload-plugin=./a/../a/x.py",
        ]));
        let l = locate(&c).unwrap();
        assert_eq!(l.source, Source::Lightningd);
        assert_eq!(l.paths, vec![dir.join("a/x.py"), PathBuf::from("/abs/y")]);
        assert!(l.notes.iter().any(|n| n.contains("PWD")));
    }

    #[test]
    fn wasm_dirs_are_read_from_lightningd_whatever_names_the_plugins() {
        let dir = tempdir();
        std::fs::create_dir_all(dir.join("ld")).unwrap();
        std::fs::write(
            dir.join("ld/config"),
            "autoreload-wasm-dir=/from/config:/c\n",
        )
        .unwrap();
        let mut c = ctx(&dir);
        c.argv = os(&["/wrapped.wasm"]);
        c.parent_cmdline = Some(os(&[
            "lightningd",
            "--lightning-dir=ld",
            "--autoreload-wasm-dir=/m:/mirror",
            "--autoreload-wasm-dir",
            "/n",
        ]));
        let l = locate(&c).unwrap();
        assert_eq!(l.source, Source::Argv);
        let dirs: Vec<&str> = l
            .early
            .iter()
            .filter(|(n, _)| n == WASM_DIR)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(dirs, vec!["/from/config:/c", "/m:/mirror", "/n"]);
    }

    #[test]
    fn argv_beats_env_beats_lightningd() {
        let dir = std::env::temp_dir();
        let mut c = ctx(&dir);
        c.parent_cmdline = Some(os(&["lightningd", "--autoreload-plugin=/c"]));
        c.env_plugins = Some("/b1:/b2".into());
        assert_eq!(
            locate(&c).unwrap().paths,
            vec![PathBuf::from("/b1"), PathBuf::from("/b2")]
        );
        c.argv = os(&["/a"]);
        let l = locate(&c).unwrap();
        assert_eq!(
            (l.paths, l.source),
            (vec![PathBuf::from("/a")], Source::Argv)
        );
    }

    #[test]
    fn nothing_found_is_none() {
        let mut c = ctx(&std::env::temp_dir());
        c.parent_cmdline = Some(os(&["lightningd", "--network=regtest"]));
        assert!(locate(&c).is_none());
    }

    #[test]
    fn missing_pwd_falls_back_to_cwd_and_says_so() {
        let mut c = ctx(Path::new("/"));
        c.pwd = None;
        c.cwd = PathBuf::from("/ld/regtest");
        c.argv = os(&["p.py"]);
        let l = locate(&c).unwrap();
        assert_eq!(l.paths, vec![PathBuf::from("/ld/regtest/p.py")]);
        assert!(l.notes[0].contains("PWD is not set"), "{:?}", l.notes);
    }

    #[test]
    fn config_files_network_subdir_conf_and_include() {
        let tmp = tempdir();
        let ld = tmp.join("ld");
        std::fs::create_dir_all(ld.join("regtest")).unwrap();
        std::fs::write(
            ld.join("config"),
            "# top\nnetwork=regtest\nautoreload-plugin=/from/top\n",
        )
        .unwrap();
        std::fs::write(ld.join("regtest/config"), "include more.conf\n").unwrap();
        std::fs::write(
            ld.join("regtest/more.conf"),
            "autoreload-plugin = /from/include\n",
        )
        .unwrap();
        let mut c = ctx(&tmp);
        c.parent_cmdline = Some(os(&[
            "lightningd",
            "--lightning-dir",
            ld.to_str().unwrap(),
            "--autoreload-plugin=/from/cmdline",
        ]));
        let l = locate(&c).unwrap();
        assert_eq!(
            l.paths,
            vec![
                PathBuf::from("/from/top"),
                PathBuf::from("/from/include"),
                PathBuf::from("/from/cmdline")
            ]
        );
        // --conf replaces the top config file.
        std::fs::write(
            tmp.join("alt.conf"),
            "regtest\nautoreload-plugin=/from/alt\n",
        )
        .unwrap();
        c.parent_cmdline = Some(os(&[
            "lightningd",
            &format!("--lightning-dir={}", ld.display()),
            "--conf=alt.conf",
        ]));
        let l = locate(&c).unwrap();
        assert_eq!(
            l.paths,
            vec![PathBuf::from("/from/alt"), PathBuf::from("/from/include")]
        );
        // Default lightning dir is ~/.lightning.
        let home_ld = tmp.join("home/.lightning");
        std::fs::create_dir_all(&home_ld).unwrap();
        std::fs::write(home_ld.join("config"), "autoreload-plugin=/from/home\n").unwrap();
        c.parent_cmdline = Some(os(&["lightningd"]));
        assert_eq!(locate(&c).unwrap().paths, vec![PathBuf::from("/from/home")]);
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "locate-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
