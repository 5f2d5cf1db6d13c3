//! Native plugins in a Landlock sandbox (`autoreload-native-*` options).
//!
//! Owns: reading and binding the `autoreload-native-sandbox`, `-allow`,
//! `-net` and `-env` values to plugins; deciding, at each spawn, what a
//! sandboxed plugin may read, write and connect to; building the Landlock
//! ruleset for it (in the parent, before the fork: opening every path and
//! creating the ruleset allocate); the environment it gets; and the
//! `sandbox` entry of `autoreload-status`. Must not: spawn anything or
//! apply the ruleset itself: `backend::native` does that between fork and
//! exec with [`restrict_self`], which only makes two system calls.
//!
//! Landlock only allows: "everything but the lightning dir" is made of
//! rules granting each sibling of each directory on the way from `/` down
//! to the lightning dir, and then, inside it, the entries of the network
//! directory (the plugin's cwd) that hold no secret.

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreatedAttr, ABI,
};
use serde_json::{json, Value};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::link::Link;
use crate::options::{self, PerPlugin, Scope};
use crate::rpc_allow::{AllowList, Methods};
use crate::rpc_fence::{self, Fence};
use crate::rpc_filter::Filter;

/// Whether (and how) native plugins are sandboxed: `[PLUGIN::]MODE`.
pub const OPT_SANDBOX: &str = options::NATIVE_SANDBOX.name;
/// Extra paths a sandboxed plugin may use: `[PLUGIN::]PATH[:rw]`.
pub const OPT_ALLOW: &str = options::NATIVE_ALLOW.name;
/// Network a sandboxed plugin may use: `[PLUGIN::]any|none|PORT,...`.
pub const OPT_NET: &str = options::NATIVE_NET.name;
/// Environment variables a sandboxed plugin keeps: `[PLUGIN::]NAME,...`.
pub const OPT_ENV: &str = options::NATIVE_ENV.name;
/// lightningd methods a sandboxed plugin may call: `[PLUGIN::]METHOD`.
pub const OPT_RPC_ALLOW: &str = options::NATIVE_RPC_ALLOW.name;
/// Test knob: the Landlock ABI the sandbox requires, in place of the one
/// its rules need (set it above the kernel's to see a refusal).
pub const ABI_REQUIRED_VAR: &str = "AUTORELOAD_LANDLOCK_ABI_REQUIRED";

/// The newest Landlock ABI whose file system rights the sandbox handles
/// (5: ioctl on devices). Newer ABIs add nothing it relies on.
const FS_ABI: i32 = 5;

/// The option values, as given (to lightningd's command line, its config
/// files, or in `init`), each read once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// `autoreload-native-sandbox` values (`None`: none of the modes).
    pub sandbox: PerPlugin<Option<Mode>>,
    /// `autoreload-native-allow` values.
    pub allow: PerPlugin<Grant>,
    /// `autoreload-native-net` values (an error: what is wrong with it).
    pub net: PerPlugin<Result<Net, String>>,
    /// `autoreload-native-env` values.
    pub env: PerPlugin<Vec<String>>,
    /// `autoreload-native-rpc-allow` values.
    pub rpc_allow: AllowList,
    /// lightningd's `lightning-rpc` (its default until init names it).
    pub rpc_socket: Option<PathBuf>,
}

impl Options {
    /// Collects the values of the sandbox options from `(name, value)`
    /// pairs (the locator's reading of lightningd's command line).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Options {
        let mut o = Options::default();
        for (name, value) in pairs {
            o.push(name, value.to_owned());
        }
        o
    }

    /// Records one value of option `name`; other names are ignored.
    pub fn push(&mut self, name: &str, value: String) {
        match name {
            OPT_SANDBOX => self.sandbox.push(&value, Mode::parse),
            OPT_ALLOW => self.allow.push(&value, Grant::parse),
            OPT_NET => self.net.push(&value, Net::parse),
            OPT_ENV => self.env.push(&value, env_names),
            OPT_RPC_ALLOW => self.rpc_allow.push(&value),
            _ => {}
        }
    }

    /// Problems with the values, given the managed plugins' file names:
    /// a prefix naming no plugin, a value that means nothing.
    pub fn check(&self, names: &[String]) -> Vec<String> {
        let mut out = vec![];
        let unknown = |opt: &str, plugin: Option<&String>, raw: &str, out: &mut Vec<String>| {
            if let Some(n) = plugin.filter(|n| !names.contains(n)) {
                out.push(format!(
                    "{opt}={raw}: no managed plugin is called '{n}' (managed: {}): ignored",
                    names.join(", ")
                ));
            }
        };
        for v in self.sandbox.iter() {
            unknown(OPT_SANDBOX, v.plugin.as_ref(), &v.raw, &mut out);
            if v.value.is_none() {
                out.push(format!(
                    "{OPT_SANDBOX}={}: '{}' is not on, off or best-effort: the plugin is sandboxed (on)",
                    v.raw, v.text
                ));
            }
        }
        for v in self.allow.iter() {
            unknown(OPT_ALLOW, v.plugin.as_ref(), &v.raw, &mut out);
        }
        for v in self.net.iter() {
            unknown(OPT_NET, v.plugin.as_ref(), &v.raw, &mut out);
            if let Err(e) = &v.value {
                out.push(format!("{OPT_NET}={}: {e}: no network (none)", v.raw));
            }
        }
        for v in self.env.iter() {
            unknown(OPT_ENV, v.plugin.as_ref(), &v.raw, &mut out);
        }
        for v in self.rpc_allow.values().iter() {
            unknown(OPT_RPC_ALLOW, v.plugin.as_ref(), &v.raw, &mut out);
        }
        // (A .wasm plugin has its own list, autoreload-wasm-rpc-allow.)
        let native = |n: &&String| {
            crate::backend::BackendKind::for_path(Path::new(n.as_str()))
                == crate::backend::BackendKind::Native
        };
        for n in names.iter().filter(native) {
            if self.spec(n).is_none() && self.rpc_allow.for_plugin(n).is_some() {
                out.push(format!(
                    "{OPT_RPC_ALLOW}: {n} is not sandboxed (autoreload-native-sandbox): the list does not apply to it, it may call every method"
                ));
            }
        }
        out
    }

    /// What plugin `name` runs in: `None` when it is not sandboxed.
    pub fn spec(&self, name: &str) -> Option<Spec> {
        // A value for this plugin beats one for all; the last one counts.
        // Anything but off (even a typo) sandboxes: fail closed.
        let mode = self.sandbox.last_for(name)?.value.unwrap_or(Mode::On);
        if mode == Mode::Off {
            return None;
        }
        // The grants for all first, then the plugin's own.
        let grants = [Scope::All, Scope::Named]
            .into_iter()
            .flat_map(|scope| {
                self.allow
                    .for_plugin(name)
                    .filter(move |g| g.scope() == scope)
            })
            .map(|g| g.value.clone())
            .collect();
        let net = match self.net.last_for(name).map(|v| &v.value) {
            Some(Ok(net)) => net.clone(),
            Some(Err(_)) | None => Net::Ports(vec![]),
        };
        let env = self.env.last_for(name).map(|v| v.value.clone());
        let rpc_allow = self
            .rpc_allow
            .for_plugin(name)
            .unwrap_or_else(Methods::read_only);
        Some(Spec {
            mode,
            grants,
            net,
            env,
            rpc_allow,
            rpc_socket: self.rpc_socket.clone(),
        })
    }
}

/// `autoreload-native-env`'s value: `NAME,...`.
fn env_names(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `autoreload-native-sandbox`'s value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Sandboxed; not started where the kernel cannot enforce the rules.
    On,
    /// Sandboxed as far as the kernel can; started anyway.
    BestEffort,
    /// Not sandboxed.
    Off,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        match s.trim() {
            "on" | "true" | "yes" | "" => Some(Mode::On),
            "best-effort" => Some(Mode::BestEffort),
            "off" | "false" | "no" => Some(Mode::Off),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::On => "on",
            Mode::BestEffort => "best-effort",
            Mode::Off => "off",
        }
    }
}

/// `autoreload-native-net`'s value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Net {
    /// Any TCP connection and bind.
    Any,
    /// TCP connections and binds to these ports only (none: no TCP).
    Ports(Vec<u16>),
}

impl Net {
    fn parse(s: &str) -> Result<Net, String> {
        match s.trim() {
            "any" => Ok(Net::Any),
            "none" | "" => Ok(Net::Ports(vec![])),
            list => list
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<u16>()
                        .map_err(|_| format!("'{p}' is not any, none or a TCP port"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Net::Ports),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Net::Any => json!("any"),
            Net::Ports(p) if p.is_empty() => json!("none"),
            Net::Ports(p) => json!(p),
        }
    }
}

/// A path granted with `autoreload-native-allow`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// As given: relative paths are relative to the plugin's cwd
    /// (lightningd's `<lightning-dir>/<network>`).
    pub path: PathBuf,
    /// Read-write (`:rw`) rather than read-only.
    pub write: bool,
}

impl Grant {
    fn parse(v: &str) -> Grant {
        let (path, write) = match v.rsplit_once(':') {
            Some((p, "rw")) => (p, true),
            Some((p, "ro")) => (p, false),
            _ => (v, false),
        };
        Grant {
            path: PathBuf::from(path),
            write,
        }
    }
}

/// What one plugin's sandbox is made of, from the options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// On or best-effort.
    pub mode: Mode,
    /// Extra paths.
    pub grants: Vec<Grant>,
    /// TCP.
    pub net: Net,
    /// The environment variables it keeps (`None`: all of lightningd's).
    pub env: Option<Vec<String>>,
    /// The lightningd methods it may call.
    pub rpc_allow: Methods,
    /// lightningd's socket, which it must not reach.
    pub rpc_socket: Option<PathBuf>,
}

impl Spec {
    /// The Landlock ABI the rules need: 3 for the file system rules
    /// (truncation), 4 for TCP rules.
    pub fn needed_abi(&self) -> i32 {
        match self.net {
            Net::Any => 3,
            Net::Ports(_) => 4,
        }
    }
}

/// What each native plugin's last generation was started in, for
/// `autoreload-status`. Which sandbox a plugin gets is the supervisor's
/// decision ([`Options::spec`]); this is where it is made real.
#[derive(Default)]
pub struct Settings {
    /// Per plugin: the status entry of its last generation's sandbox.
    started: Vec<Option<Value>>,
    /// Per plugin: its filtering socket, once it was sandboxed.
    filters: Vec<Option<Filter>>,
    /// Per plugin: the views made for its generations, newest last.
    views: Vec<Vec<PathBuf>>,
    /// Views made so far (their names).
    made: u64,
}

/// A sandbox ready to be entered by a child between fork and exec.
#[derive(Debug)]
pub struct Prepared {
    /// The Landlock ruleset (`None`: best-effort on a kernel without
    /// Landlock).
    pub ruleset: Option<OwnedFd>,
    /// The environment the child gets, instead of the host's.
    pub env: Option<Vec<(OsString, OsString)>>,
    /// Its private temporary directory (`TMPDIR`).
    pub tmpdir: PathBuf,
    /// The namespaces that keep it from lightningd's socket (`None`:
    /// best-effort where the kernel cannot).
    pub fence: Option<Fence>,
}

impl Settings {
    /// Prepares plugin `p`'s sandbox `spec` for a spawn now, and records
    /// what it was started with. `Ok(None)`: not sandboxed. `Err`: it
    /// must not start (says why and what to do).
    pub fn prepare(
        &mut self,
        p: usize,
        spec: Option<&Spec>,
        name: &str,
        plugin: &Path,
        link: &Link,
    ) -> Result<Option<Prepared>, String> {
        if self.started.len() <= p {
            self.started.resize(p + 1, None);
            self.filters.resize_with(p + 1, || None);
            self.views.resize_with(p + 1, Vec::new);
        }
        let Some(s) = spec else {
            self.started[p] = Some(json!({"sandboxed": false, "rpc": {"filtered": false}}));
            return Ok(None);
        };
        let cwd = std::env::current_dir()
            .map_err(|e| format!("sandbox: cannot read the working directory: {e}"))?;
        let rpc = self.rpc_for(p, s, name, link);
        match rpc.and_then(|rpc| build(s, name, plugin, &cwd, &rpc)) {
            Ok((prepared, status)) => {
                // best-effort: what the kernel does not enforce is said at
                // each start, not only in the status.
                for limit in status["limits"].as_array().into_iter().flatten() {
                    let limit = limit.as_str().unwrap_or_default();
                    link.log(
                        crate::link::Level::Warn,
                        format!("[{name}] sandbox (best-effort) not enforced: {limit}"),
                    );
                }
                self.started[p] = Some(status);
                Ok(Some(prepared))
            }
            Err(why) => {
                self.started[p] =
                    Some(json!({"sandboxed": false, "mode": s.mode.name(), "refused": why}));
                Err(why)
            }
        }
    }

    /// The `sandbox` entry of plugin `p`'s status; `configured`: whether
    /// the options in force give it one.
    pub fn status(&self, p: usize, configured: bool) -> Value {
        let mut s = match self.started.get(p) {
            Some(Some(s)) => s.clone(),
            _ => json!({"sandboxed": false, "configured": configured}),
        };
        if let (Some(Some(f)), Some(rpc)) = (self.filters.get(p), s.get_mut("rpc")) {
            if rpc.get("filter").is_some() {
                rpc["calls"] = f.counts();
            }
        }
        s
    }

    /// Plugin `p`'s filtering socket (started the first time), set to
    /// `spec`'s list, and a fresh directory for this generation's view.
    fn rpc_for(&mut self, p: usize, spec: &Spec, name: &str, link: &Link) -> Result<Rpc, String> {
        let base = rpc_base();
        let dir = base.join(p.to_string());
        make_private_dir(&dir)?;
        let socket = dir.join("lightning-rpc");
        if self.filters[p].is_none() {
            let f = Filter::start(&socket, name, link.clone(), spec.rpc_allow.clone())
                .map_err(|e| format!("sandbox: cannot listen at {}: {e}", socket.display()))?;
            self.filters[p] = Some(f);
        }
        if let Some(f) = &self.filters[p] {
            f.set(spec.rpc_allow.clone(), spec.rpc_socket.clone());
        }
        // A view may still cover an older generation's network directory
        // (it serves during a reload): its files stay until the next one.
        self.made += 1;
        let view = dir.join(format!("view-{}", self.made));
        make_private_dir(&view)?;
        let views = &mut self.views[p];
        views.push(view.clone());
        while views.len() > 2 {
            let old = views.remove(0);
            let _ = std::fs::remove_dir_all(old);
        }
        Ok(Rpc {
            filter: socket,
            view,
            hide: base,
        })
    }
}

/// Where a plugin's calls to lightningd go, for one spawn.
struct Rpc {
    /// Its filtering socket.
    filter: PathBuf,
    /// The directory that will cover the network directory.
    view: PathBuf,
    /// The directory of all filters, hidden from it.
    hide: PathBuf,
}

/// The directory of the filtering sockets and views:
/// `<tmp>/cln-autoreload-<host pid>-rpc` (not in the plugins' own
/// temporary directories, which they may write).
fn rpc_base() -> PathBuf {
    std::env::temp_dir().join(format!("cln-autoreload-{}-rpc", std::process::id()))
}

fn make_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("sandbox: cannot create {}: {e}", dir.display()))
}

/// The kernel's Landlock ABI (0: none).
pub fn kernel_abi() -> i32 {
    // SAFETY: the version query takes no pointer and touches no memory.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    i32::try_from(v).unwrap_or(0).max(0)
}

/// Enters the ruleset `fd`: no new privileges, then
/// `landlock_restrict_self`. Only system calls: safe between fork and
/// exec.
pub fn restrict_self(fd: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: both are plain system calls on integers.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::syscall(libc::SYS_landlock_restrict_self, fd.as_raw_fd(), 0u32) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether an entry of the network directory holds a secret a plugin
/// must not read: the node's keys, its database, its recovery file and
/// backups, and the config (it may hold bitcoind's rpc password).
pub fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("hsm_secret")
        || n.starts_with("lightningd.sqlite3")
        || n == "emergency.recover"
        || n.contains("backup")
        || n.ends_with(".bak")
        || n == "config"
}

/// Whether `a` is `b` or one of its ancestors.
fn contains(a: &Path, b: &Path) -> bool {
    b.starts_with(a)
}

/// One rule: a path and what it grants.
struct Rule {
    path: PathBuf,
    access: BitFlags<AccessFs>,
}

fn build(
    spec: &Spec,
    name: &str,
    plugin: &Path,
    cwd: &Path,
    rpc: &Rpc,
) -> Result<(Prepared, Value), String> {
    let kernel = kernel_abi();
    let override_abi = std::env::var(ABI_REQUIRED_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<i32>().ok());
    let required = override_abi.unwrap_or_else(|| spec.needed_abi());
    let mut limits = vec![];
    if kernel < required {
        let what = if kernel == 0 {
            "this kernel has no Landlock (or it is disabled: add landlock to the lsm= boot parameter)".to_string()
        } else {
            format!("this kernel's Landlock ABI is {kernel}, the sandbox needs {required}")
        };
        if spec.mode != Mode::BestEffort {
            return Err(format!(
                "sandbox: {what}: not started. Run it on a newer kernel, or write autoreload-native-sandbox={name}::best-effort to start it with what the kernel enforces"
            ));
        }
        limits.push(what);
    }
    let network_dir = cwd
        .canonicalize()
        .map_err(|e| format!("sandbox: cannot resolve {}: {e}", cwd.display()))?;
    let lightning_dir = network_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| network_dir.clone());
    let tmpdir = private_tmp(name)?;
    // The rules, whatever the kernel (for the status and best-effort).
    let abi = ABI::from(kernel.clamp(1, FS_ABI));
    let all = AccessFs::from_all(abi);
    let read = AccessFs::from_read(abi);
    let mut rules = vec![];
    let mut hidden = vec![];
    let mut visible = vec![];
    // Everything outside the lightning dir: each sibling on the way down.
    let mut ancestors: Vec<&Path> = lightning_dir.ancestors().collect();
    ancestors.reverse();
    for pair in ancestors.windows(2) {
        let (dir, toward) = (pair[0], pair[1]);
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path == toward {
                continue;
            }
            // A symlink pointing into the lightning dir grants nothing.
            match path.canonicalize() {
                Ok(real) if contains(&lightning_dir, &real) || contains(&real, &lightning_dir) => {
                    continue
                }
                Ok(_) => rules.push(Rule { path, access: read }),
                Err(_) => {}
            }
        }
    }
    // The network directory: its entries but the secrets, listed now.
    rules.push(Rule {
        path: network_dir.clone(),
        access: AccessFs::ReadDir.into(),
    });
    if let Ok(entries) = std::fs::read_dir(&network_dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if is_secret(&n) {
                hidden.push(n);
                continue;
            }
            let path = e.path();
            match path.canonicalize() {
                Ok(real) if contains(&lightning_dir, &real) && !real.starts_with(&network_dir) => {
                    hidden.push(n);
                }
                Ok(real)
                    if real.starts_with(&network_dir)
                        && real
                            .strip_prefix(&network_dir)
                            .ok()
                            .and_then(|r| r.components().next())
                            .is_some_and(|c| is_secret(&c.as_os_str().to_string_lossy())) =>
                {
                    hidden.push(n);
                }
                Ok(_) => {
                    visible.push(n);
                    rules.push(Rule { path, access: read });
                }
                Err(_) => {}
            }
        }
    }
    visible.sort();
    hidden.sort();

    // Writable: its own directory tree, its temp dir, harmless devices.
    let own = plugin
        .parent()
        .unwrap_or(Path::new("/"))
        .canonicalize()
        .map_err(|e| {
            format!(
                "sandbox: cannot resolve {}'s directory: {e}",
                plugin.display()
            )
        })?;
    if contains(&own, &network_dir) {
        return Err(format!(
            "sandbox: {} is in {}, which holds the network directory {} (hsm_secret): move the plugin into a directory of its own",
            plugin.display(),
            own.display(),
            network_dir.display()
        ));
    }
    let mut write = vec![own.clone(), tmpdir.clone()];
    rules.push(Rule {
        path: own,
        access: all,
    });
    rules.push(Rule {
        path: tmpdir.clone(),
        access: all,
    });
    for dev in [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/tty",
        "/dev/pts",
        "/dev/shm",
    ] {
        if Path::new(dev).exists() {
            rules.push(Rule {
                path: dev.into(),
                access: all,
            });
        }
    }
    // Granted paths.
    let grants_from = rules.len();
    let mut granted = vec![];
    let mut missing = vec![];
    for g in &spec.grants {
        let given = network_dir.join(&g.path);
        let Ok(real) = given.canonicalize() else {
            missing.push(given.display().to_string());
            continue;
        };
        if contains(&real, &network_dir) {
            return Err(format!(
                "sandbox: autoreload-native-allow={} would grant {}, which holds hsm_secret: grant the files or directories inside it the plugin needs",
                g.path.display(),
                real.display()
            ));
        }
        granted.push(json!({"path": real, "access": if g.write { "rw" } else { "ro" }}));
        if g.write {
            write.push(real.clone());
        }
        rules.push(Rule {
            path: real,
            access: if g.write { all } else { read },
        });
    }
    let granted_paths: Vec<&Path> = rules[grants_from..]
        .iter()
        .map(|r| r.path.as_path())
        .collect();
    let (fence, fenced) = fence(
        spec,
        name,
        &network_dir,
        &hidden,
        &granted_paths,
        rpc,
        &mut limits,
    )?;
    if fence.is_some() {
        rules.push(Rule {
            path: rpc.view.clone(),
            access: AccessFs::ReadDir.into(),
        });
    }
    let ruleset = if kernel == 0 {
        None
    } else {
        let net = match &spec.net {
            Net::Ports(_) if kernel < 4 => {
                limits.push(format!(
                    "TCP is not restricted: the kernel's Landlock ABI is {kernel} (needs 4)"
                ));
                None
            }
            Net::Ports(p) => Some(p),
            Net::Any => None,
        };
        Some(ruleset(abi, all, &rules, net).map_err(|e| format!("sandbox: {e}"))?)
    };
    let env = spec.env.as_ref().map(|keep| {
        std::env::vars_os()
            .filter(|(k, _)| {
                let k = k.to_string_lossy();
                k.starts_with("LIGHTNINGD_")
                    || keep.iter().any(|w| match w.strip_suffix('*') {
                        Some(prefix) => k.starts_with(prefix),
                        None => *w == k,
                    })
            })
            .chain([("TMPDIR".into(), tmpdir.clone().into_os_string())])
            .collect::<Vec<_>>()
    });
    let enforced = match (&ruleset, limits.is_empty()) {
        (None, _) => "none",
        (Some(_), true) => "full",
        (Some(_), false) => "partial",
    };
    let status = json!({
        "sandboxed": ruleset.is_some(),
        "mode": spec.mode.name(),
        "enforced": enforced,
        "limits": limits,
        "landlock_abi": kernel,
        "required_abi": required,
        "hidden_dir": lightning_dir,
        "readable_in_network_dir": visible,
        "hidden_in_network_dir": hidden,
        "granted": granted,
        "missing_grants": missing,
        "writable": write,
        "net": spec.net.to_json(),
        "env": spec.env.as_ref().map_or(json!("all"), |k| json!(k)),
        "tmpdir": tmpdir,
        "rpc": {
            "filter": rpc.filter,
            "fenced": fenced,
            "lightningd_socket": spec.rpc_socket,
            "allow": spec.rpc_allow.to_json(),
        },
    });
    Ok((
        Prepared {
            ruleset,
            env,
            tmpdir,
            fence,
        },
        status,
    ))
}

/// The fence that puts the filter in place of lightningd's socket, made of
/// a view of the network directory where every entry is the real one but
/// the secrets (`hidden`: empty placeholders, unless something in them
/// is `granted`) and the socket (the filter); `(None, false)` where the
/// kernel cannot (best-effort: said in `limits`). Also says whether the
/// plugin is fenced.
fn fence(
    spec: &Spec,
    name: &str,
    network_dir: &Path,
    hidden: &[String],
    granted: &[&Path],
    rpc: &Rpc,
    limits: &mut Vec<String>,
) -> Result<(Option<Fence>, bool), String> {
    if let Err(why) = rpc_fence::available() {
        let what = format!("lightning-rpc is not fenced ({why}): the plugin can connect to it and call every method");
        if spec.mode != Mode::BestEffort {
            return Err(format!(
                "sandbox: {what}: not started. Allow unprivileged user namespaces, or write autoreload-native-sandbox={name}::best-effort to start it without the fence"
            ));
        }
        limits.push(what);
        return Ok((None, false));
    }
    let real = spec
        .rpc_socket
        .clone()
        .unwrap_or_else(|| network_dir.join("lightning-rpc"));
    // The socket may not exist yet (lightningd creates it after it has
    // started its plugins): its parent is what must be resolved.
    let real = match (real.parent().map(Path::canonicalize), real.file_name()) {
        (Some(Ok(dir)), Some(f)) => dir.join(f),
        _ => real,
    };
    let in_netdir = real.parent() == Some(network_dir);
    let rpc_name = real.file_name().filter(|_| in_netdir);
    let mut binds: Vec<(PathBuf, PathBuf)> = vec![];
    let mut placeholders = vec![];
    let entries = std::fs::read_dir(network_dir)
        .map_err(|e| format!("sandbox: cannot list {}: {e}", network_dir.display()))?;
    for e in entries.flatten() {
        let n = e.file_name();
        let at = rpc.view.join(&n);
        let is_dir = e.path().is_dir();
        placeholders.push((at.clone(), is_dir));
        if Some(n.as_os_str()) == rpc_name {
            binds.push((rpc.filter.clone(), at));
        } else if e.path().exists() {
            let secret = hidden.iter().any(|h| *h == n.to_string_lossy());
            // Landlock still decides what of a granted secret it may use.
            let real = e.path().canonicalize().unwrap_or_else(|_| e.path());
            if !secret || granted.iter().any(|g| g.starts_with(&real)) {
                binds.push((e.path(), at));
            }
        }
    }
    if let Some(n) = rpc_name {
        if !placeholders.iter().any(|(p, _)| p.file_name() == Some(n)) {
            let at = rpc.view.join(n);
            placeholders.push((at.clone(), false));
            binds.push((rpc.filter.clone(), at));
        }
    }
    for (at, is_dir) in &placeholders {
        let made = if *is_dir {
            std::fs::create_dir(at)
        } else {
            std::fs::File::create(at).map(drop)
        };
        made.map_err(|e| format!("sandbox: cannot create {}: {e}", at.display()))?;
    }
    let outside = match in_netdir {
        true => None,
        false if real.exists() => Some((rpc.filter.as_path(), real.as_path())),
        false => {
            let what = format!(
                "lightningd's socket {} (outside the network directory) does not exist: it cannot be covered",
                real.display()
            );
            if spec.mode != Mode::BestEffort {
                return Err(format!("sandbox: {what}: not started"));
            }
            limits.push(what);
            None
        }
    };
    let pairs: Vec<(&Path, &Path)> = binds
        .iter()
        .map(|(a, b)| (a.as_path(), b.as_path()))
        .collect();
    let fence = Fence::new(&pairs, &rpc.view, network_dir, outside, &rpc.hide)
        .map_err(|e| format!("sandbox: {e}"))?;
    let covered = in_netdir || outside.is_some();
    Ok((Some(fence), covered))
}

/// Builds the Landlock ruleset: `all` handled, `rules` allowed, and, with
/// `ports`, TCP restricted to them.
fn ruleset(
    abi: ABI,
    all: BitFlags<AccessFs>,
    rules: &[Rule],
    ports: Option<&Vec<u16>>,
) -> Result<OwnedFd, String> {
    let mut r = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(all)
        .map_err(|e| e.to_string())?;
    if ports.is_some() {
        r = r
            .handle_access(AccessNet::from_all(abi))
            .map_err(|e| e.to_string())?;
    }
    let mut created = r.create().map_err(|e| e.to_string())?;
    let file = AccessFs::from_file(abi);
    for rule in rules {
        let fd = match PathFd::new(&rule.path) {
            Ok(fd) => fd,
            // Gone since it was listed: nothing to grant.
            Err(_) => continue,
        };
        let access = if rule.path.is_dir() {
            rule.access
        } else {
            rule.access & file
        };
        if access.is_empty() {
            continue;
        }
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| format!("{}: {e}", rule.path.display()))?;
    }
    for &port in ports.into_iter().flatten() {
        created = created
            .add_rule(NetPort::new(port, AccessNet::from_all(abi)))
            .map_err(|e| e.to_string())?;
    }
    let fd: Option<OwnedFd> = created.into();
    fd.ok_or_else(|| "the kernel created no Landlock ruleset".to_string())
}

/// A temporary directory of the plugin's own, `0700`, kept across its
/// generations: `<tmp>/cln-autoreload-<host pid>/<name>`.
fn private_tmp(name: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir().join(format!("cln-autoreload-{}", std::process::id()));
    let dir = base.join(name);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("sandbox: cannot create {}: {e}", dir.display()))?;
    dir.canonicalize()
        .map_err(|e| format!("sandbox: cannot resolve {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(sandbox: &[&str], allow: &[&str], net: &[&str]) -> Options {
        let mut o = Options::default();
        for (name, values) in [(OPT_SANDBOX, sandbox), (OPT_ALLOW, allow), (OPT_NET, net)] {
            for v in values {
                o.push(name, v.to_string());
            }
        }
        o
    }

    #[test]
    fn binding() {
        let o = opts(
            &["on", "b.py::off"],
            &["/x", "a.py::/y:rw", "b.py::/z"],
            &["a.py::any"],
        );
        let a = o.spec("a.py").expect("a is sandboxed");
        assert_eq!(a.mode, Mode::On);
        assert_eq!(a.net, Net::Any);
        assert_eq!(
            a.grants,
            vec![
                Grant {
                    path: "/x".into(),
                    write: false
                },
                Grant {
                    path: "/y".into(),
                    write: true
                }
            ]
        );
        assert!(o.spec("b.py").is_none());
        let c = o.spec("c").expect("c is sandboxed");
        assert_eq!(c.net, Net::Ports(vec![]));
        assert!(opts(&["a.py::on"], &[], &[]).spec("b.py").is_none());
        // A typo sandboxes rather than not.
        assert_eq!(
            opts(&["a.py::onn"], &[], &[]).spec("a.py").map(|s| s.mode),
            Some(Mode::On)
        );
        assert_eq!(
            opts(&["a.py::on"], &[], &["8080,9000"])
                .spec("a.py")
                .map(|s| s.net),
            Some(Net::Ports(vec![8080, 9000]))
        );
        let w = opts(&["x.py::on", "on"], &[], &["nope"]).check(&["a.py".into()]);
        assert_eq!(w.len(), 2, "{w:?}");
    }

    // The words of each warning, as they were before the values were
    // read by options::PerPlugin.
    #[test]
    fn warnings_name_the_value_and_what_is_done_with_it() {
        let mut o = opts(&["x.py::on", "a.py::onn"], &["y.py::/p"], &["a.py::nope"]);
        o.push(OPT_RPC_ALLOW, "getinfo".into());
        let w = o.check(&["a.py".into(), "b".into()]);
        assert_eq!(
            w,
            [
                "autoreload-native-sandbox=x.py::on: no managed plugin is called 'x.py' (managed: a.py, b): ignored",
                "autoreload-native-sandbox=a.py::onn: 'onn' is not on, off or best-effort: the plugin is sandboxed (on)",
                "autoreload-native-allow=y.py::/p: no managed plugin is called 'y.py' (managed: a.py, b): ignored",
                "autoreload-native-net=a.py::nope: 'nope' is not any, none or a TCP port: no network (none)",
                "autoreload-native-rpc-allow: b is not sandboxed (autoreload-native-sandbox): the list does not apply to it, it may call every method",
            ]
        );
    }

    #[test]
    fn secrets() {
        for s in [
            "hsm_secret",
            "lightningd.sqlite3",
            "lightningd.sqlite3-journal",
            "emergency.recover",
            "backup.lock",
            "x.bak",
            "config",
        ] {
            assert!(is_secret(s), "{s}");
        }
        for s in ["lightning-rpc", "gossip_store", "log", "plugins"] {
            assert!(!is_secret(s), "{s}");
        }
    }
}
