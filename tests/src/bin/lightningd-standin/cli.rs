//! Command line and config files, read like lightningd reads them.
//!
//! Pass 1 (before any plugin runs) handles lightningd's own options and keeps
//! the rest; pass 2 (after getmanifest, see `plugins::resolve_options`)
//! matches the rest against the options the plugins declared.

use std::path::{Path, PathBuf};

pub const VERSION: &str = "v26.06.6";

/// An option that lightningd itself does not know: a plugin option, a
/// leniently ignored one, or an error, decided after getmanifest.
#[derive(Clone, Debug)]
pub struct RawOpt {
    pub name: String,
    /// Given as `--name=value` or `name=value` (config).
    pub value: Option<String>,
    /// `--name value`: the next argument, if it can be a value.
    pub next: Option<String>,
}

#[derive(Debug)]
pub struct Cfg {
    pub launch_dir: PathBuf,
    pub lightning_dir: PathBuf,
    pub network: String,
    pub netdir: PathBuf,
    /// Plugin paths as given (absolute against the launch dir), and importance.
    pub plugins: Vec<(PathBuf, bool)>,
    pub disabled: Vec<String>,
    pub developer: bool,
    pub log_file: Option<PathBuf>,
    pub deprecated_apis: bool,
    /// `--help`: like lightningd, ask the plugins for their options, print
    /// them, close the plugins' stdin without init, exit.
    pub help: bool,
    /// Unknown options: config files first, then the command line.
    pub unknown: Vec<RawOpt>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Flag,
    Value,
}

/// lightningd's own options (a subset; plugins may not redeclare them).
fn builtin_kind(name: &str) -> Option<Kind> {
    match name {
        "developer"
        | "regtest"
        | "mainnet"
        | "testnet"
        | "testnet4"
        | "signet"
        | "offline"
        | "help"
        | "version"
        | "clear-plugins"
        | "experimental-offers" => Some(Kind::Flag),
        "lightning-dir"
        | "network"
        | "plugin"
        | "important-plugin"
        | "conf"
        | "log-file"
        | "disable-plugin"
        | "log-level"
        | "alias"
        | "addr"
        | "bind-addr"
        | "announce-addr"
        | "database-upgrade"
        | "allow-deprecated-apis"
        | "rgb"
        | "log-prefix"
        | "plugin-dir"
        | "rpc-file"
        | "rpc-file-mode"
        | "log-timestamps"
        | "wallet"
        | "proxy" => Some(Kind::Value),
        _ => None,
    }
}

/// Is this option name taken by lightningd itself?
pub fn is_builtin_option(name: &str) -> bool {
    builtin_kind(name).is_some()
}

/// Options accepted and ignored when no plugin claims them.
pub fn is_lenient_option(name: &str) -> bool {
    name.starts_with("bitcoin-")
}

const NETWORKS: &[&str] = &[
    "bitcoin",
    "testnet",
    "testnet4",
    "signet",
    "regtest",
    "liquid",
    "liquid-regtest",
];

struct Entry {
    name: String,
    value: Option<String>,
    /// Where it came from, for messages.
    src: String,
}

pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "1" => Some(true),
        "false" | "False" | "0" => Some(false),
        _ => None,
    }
}

/// strtoll(arg, &end, 0) with `*end == '\0'` required, like lightningd.
pub fn parse_int(s: &str) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, h)
    } else if t.len() > 1 && t.starts_with('0') {
        (8, &t[1..])
    } else {
        (10, t)
    };
    if digits.is_empty() {
        // strtoll("") is 0 and consumes nothing, which lightningd accepts.
        return if s.is_empty() { Some(0) } else { None };
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let mag = i128::from_str_radix(digits, radix).ok()?;
    let v = if neg { -mag } else { mag };
    i64::try_from(v).ok()
}

fn abs_from(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

pub const USAGE: &str = "Usage: lightningd-standin --lightning-dir=DIR [--network=regtest] [--plugin=PATH]... [--plugin-dir=DIR]... [--conf=FILE] [--developer] [--log-file=FILE] [--disable-plugin=NAME] [plugin options]...
A stand-in for Core Lightning's lightningd v26.06 towards its plugins (no Bitcoin, no peers).";

/// Executables in `dir` that lightningd would take as plugins.
fn plugins_in_dir(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let Ok(e) = e else { continue };
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == "README.md"
            || !name
                .chars()
                .all(|c| !c.is_ascii_punctuation() || matches!(c, '-' | '_' | '.'))
        {
            continue;
        }
        let path = e.path();
        // stat, not lstat: symlinks to regular files count.
        let Ok(md) = std::fs::metadata(&path) else {
            continue;
        };
        if md.is_file() && md.permissions().mode() & 0o111 != 0 {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

fn read_config(
    path: &Path,
    must_exist: bool,
    out: &mut Vec<Entry>,
    depth: usize,
) -> Result<(), String> {
    if depth > 16 {
        return Err(format!("{}: include nesting too deep", path.display()));
    }
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if !must_exist && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("Opening and reading {}: {e}", path.display())),
    };
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(rest) = l.strip_prefix("include ") {
            let inc = abs_from(&dir, rest.trim());
            read_config(&inc, true, out, depth + 1)?;
            continue;
        }
        let (name, value) = match l.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.to_string())),
            None => (l, None),
        };
        let name = name.trim_start_matches("--");
        out.push(Entry {
            name: name.to_string(),
            value,
            src: format!("{} line {}", path.display(), i + 1),
        });
    }
    Ok(())
}

/// Pass 1 over the command line and the config files.
pub fn parse(args: &[String]) -> Result<Cfg, String> {
    let launch_dir = std::env::current_dir().map_err(|e| format!("getcwd: {e}"))?;
    let mut cmdline: Vec<Entry> = Vec::new();
    let mut unknown_cmd: Vec<RawOpt> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let Some(body) = a.strip_prefix("--") else {
            if a == "-V" {
                cmdline.push(Entry {
                    name: "version".into(),
                    value: None,
                    src: "command line".into(),
                });
                continue;
            }
            return Err(format!("Unknown argument '{a}'"));
        };
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (body.to_string(), None),
        };
        match builtin_kind(&name) {
            Some(Kind::Flag) => {
                if value.is_some() {
                    return Err(format!("--{name}: doesn't allow an argument"));
                }
                cmdline.push(Entry {
                    name,
                    value: None,
                    src: "command line".into(),
                });
            }
            Some(Kind::Value) => {
                let v = match value {
                    Some(v) => v,
                    None => match args.get(i) {
                        Some(v) => {
                            i += 1;
                            v.clone()
                        }
                        None => return Err(format!("--{name}: requires an argument")),
                    },
                };
                cmdline.push(Entry {
                    name,
                    value: Some(v),
                    src: "command line".into(),
                });
            }
            None => {
                let next = if value.is_none() {
                    match args.get(i) {
                        Some(n) if !n.starts_with("--") => {
                            i += 1;
                            Some(n.clone())
                        }
                        _ => None,
                    }
                } else {
                    None
                };
                unknown_cmd.push(RawOpt { name, value, next });
            }
        }
    }

    if cmdline.iter().any(|e| e.name == "version") {
        println!("{VERSION}");
        std::process::exit(0);
    }

    let last = |name: &str| -> Option<String> {
        cmdline
            .iter()
            .rev()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    let lightning_dir = match last("lightning-dir") {
        Some(d) => abs_from(&launch_dir, &d),
        None => match std::env::var_os("HOME") {
            Some(h) => PathBuf::from(h).join(".lightning"),
            None => return Err("--lightning-dir is required (no $HOME)".into()),
        },
    };
    let conf = last("conf").map(|c| abs_from(&launch_dir, &c));

    fn network_of(entries: &[Entry]) -> Option<String> {
        let mut net = None;
        for e in entries {
            match (e.name.as_str(), &e.value) {
                ("network", Some(v)) => net = Some(v.clone()),
                ("regtest", None) => net = Some("regtest".into()),
                ("testnet", None) => net = Some("testnet".into()),
                ("testnet4", None) => net = Some("testnet4".into()),
                ("signet", None) => net = Some("signet".into()),
                ("mainnet", None) => net = Some("bitcoin".into()),
                _ => {}
            }
        }
        net
    }

    let mut config: Vec<Entry> = Vec::new();
    let network;
    match &conf {
        Some(c) => {
            // --conf replaces both the general and the network config file.
            read_config(c, true, &mut config, 0)?;
            network = network_of(&cmdline)
                .or_else(|| network_of(&config))
                .unwrap_or_else(|| "bitcoin".into());
        }
        None => {
            read_config(&lightning_dir.join("config"), false, &mut config, 0)?;
            network = network_of(&cmdline)
                .or_else(|| network_of(&config))
                .unwrap_or_else(|| "bitcoin".into());
            read_config(
                &lightning_dir.join(&network).join("config"),
                false,
                &mut config,
                0,
            )?;
        }
    }
    if !NETWORKS.contains(&network.as_str()) {
        return Err(format!("Unknown network name '{network}'"));
    }

    let mut default_dir = true;
    let mut cfg = Cfg {
        netdir: lightning_dir.join(&network),
        lightning_dir: lightning_dir.clone(),
        launch_dir: launch_dir.clone(),
        network,
        plugins: Vec::new(),
        disabled: Vec::new(),
        developer: false,
        log_file: None,
        // As in the traces: v26.06 allows deprecated apis unless told not to.
        deprecated_apis: true,
        help: false,
        unknown: Vec::new(),
    };

    for e in config.into_iter().chain(cmdline) {
        let Some(kind) = builtin_kind(&e.name) else {
            cfg.unknown.push(RawOpt {
                name: e.name,
                value: e.value,
                next: None,
            });
            continue;
        };
        let v = match (kind, e.value) {
            (Kind::Flag, Some(_)) => {
                return Err(format!(
                    "{}: --{}: doesn't allow an argument",
                    e.src, e.name
                ))
            }
            (Kind::Value, None) => {
                return Err(format!("{}: --{}: requires an argument", e.src, e.name))
            }
            (_, v) => v.unwrap_or_default(),
        };
        match e.name.as_str() {
            "plugin" => cfg.plugins.push((abs_from(&launch_dir, &v), false)),
            "important-plugin" => cfg.plugins.push((abs_from(&launch_dir, &v), true)),
            "disable-plugin" => cfg.disabled.push(v),
            "plugin-dir" => {
                let dir = abs_from(&launch_dir, &v);
                let found = plugins_in_dir(&dir)
                    .map_err(|e| format!("Failed to open plugin-dir {}: {e}", dir.display()))?;
                cfg.plugins.extend(found.into_iter().map(|p| (p, false)));
            }
            "clear-plugins" => {
                cfg.plugins.clear();
                default_dir = false;
            }
            "help" => cfg.help = true,
            "developer" => cfg.developer = true,
            "log-file" => cfg.log_file = Some(abs_from(&launch_dir, &v)),
            "allow-deprecated-apis" => {
                cfg.deprecated_apis = parse_bool(&v)
                    .ok_or_else(|| format!("--allow-deprecated-apis={v}: Invalid argument '{v}'"))?
            }
            _ => {}
        }
    }
    cfg.unknown.extend(unknown_cmd);
    // lightningd also runs what is in <lightning-dir>/plugins (and one level
    // of subdirectories), after the plugins named on the command line.
    if default_dir {
        let base = cfg.lightning_dir.join("plugins");
        let mut dirs = vec![base.clone()];
        if let Ok(rd) = std::fs::read_dir(&base) {
            let mut subs: Vec<PathBuf> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            subs.sort();
            dirs.extend(subs);
        }
        for d in dirs {
            if let Ok(found) = plugins_in_dir(&d) {
                cfg.plugins.extend(found.into_iter().map(|p| (p, false)));
            }
        }
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints() {
        assert_eq!(parse_int("42"), Some(42));
        assert_eq!(parse_int("-7"), Some(-7));
        assert_eq!(parse_int("0x10"), Some(16));
        assert_eq!(parse_int("010"), Some(8));
        assert_eq!(parse_int("0"), Some(0));
        assert_eq!(parse_int("4x"), None);
        assert_eq!(parse_int("99999999999999999999"), None);
        assert_eq!(parse_int("-"), None);
    }
}
