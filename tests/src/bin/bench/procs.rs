//! Processes, files and the machine: /proc, atomic writes, facts.

use anyhow::{bail, Context as _, Result};
use cln_autoreload_tests::facts;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The parent of a process.
fn stat(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.get(s.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The children of `parent` whose executable's file name is `exe`.
pub fn children_named(parent: u32, exe: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat(pid) == Some(parent))
        .filter(|&pid| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .is_some_and(|n| n == exe || n.starts_with(&format!("{exe} ")))
        })
        .collect()
}

/// The cln-autoreload process a node runs as its plugin.
pub fn host_of(node_pid: u32) -> Result<u32> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(&pid) = children_named(node_pid, "cln-autoreload").first() {
            return Ok(pid);
        }
        if Instant::now() > until {
            anyhow::bail!("no cln-autoreload child of node {node_pid} found in /proc");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `kB` (KiB) field of /proc/<pid>/status, in MB (10^6 bytes).
fn status_mb(pid: u32, field: &str) -> Result<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let line = s
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    let kb: f64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("bad line {line:?}"))?;
    Ok(kb * 1024.0 / 1e6)
}

/// Resident memory now, MB.
pub fn rss_mb(pid: u32) -> Result<f64> {
    status_mb(pid, "VmRSS:")
}

/// Peak resident memory so far, MB.
pub fn hwm_mb(pid: u32) -> Result<f64> {
    status_mb(pid, "VmHWM:")
}

/// Writes `bytes` to `path` as a build would: a temporary file beside it,
/// closed, then renamed over it. Returns the moment the rename is done.
pub fn write_atomically(path: &Path, bytes: &[u8], executable: bool) -> Result<Instant> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("bench-tmp~");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    if executable {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming onto {}", path.display()))?;
    Ok(Instant::now())
}

/// Rewrites `path` in place (truncate, write, close), as many editors save;
/// returns when it is closed.
pub fn write_in_place(path: &Path, bytes: &[u8]) -> Result<Instant> {
    std::fs::write(path, bytes).with_context(|| format!("writing {} in place", path.display()))?;
    Ok(Instant::now())
}

/// Copies `from` into `dir` (same file name), executable.
pub fn copy_into(from: &Path, dir: &Path) -> Result<PathBuf> {
    let name = from
        .file_name()
        .with_context(|| format!("{} has no file name", from.display()))?;
    let to = dir.join(name);
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    write_atomically(&to, &bytes, true)?;
    Ok(to)
}

/// The CPUs this process may run on (`Cpus_allowed_list`).
fn allowed_cpus() -> Result<String> {
    let s = std::fs::read_to_string("/proc/self/status")?;
    s.lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
        .context("no Cpus_allowed_list in /proc/self/status")
}

/// Sets the CPUs of every thread of this process (children started
/// afterwards inherit them).
fn set_cpus(list: &str) -> Result<()> {
    let out = Command::new("taskset")
        .args(["-a", "-p", "-c", list, &std::process::id().to_string()])
        .output()
        .context("running taskset (util-linux)")?;
    if !out.status.success() {
        bail!(
            "taskset -a -p -c {list} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `f` with this process (and so every process it starts meanwhile)
/// on one core, the last one; restores the CPUs it had.
pub fn on_one_core<T>(f: impl FnOnce(usize) -> Result<T>) -> Result<T> {
    let all = allowed_cpus()?;
    let cpu = std::thread::available_parallelism().map_or(1, |n| n.get()) - 1;
    set_cpus(&cpu.to_string())?;
    let r = f(cpu);
    set_cpus(&all)?;
    r
}

/// What the figures were measured on.
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub mem_gib: f64,
    pub kernel: String,
    pub date: String,
    pub rustc: String,
    pub commit: String,
    pub lightningd: String,
}

impl Machine {
    pub fn facts(real: Option<&Path>) -> Machine {
        let cpu = facts::cpu_model();
        let mem_gib = facts::mem_gib();
        let commit = facts::commit(&[
            "host",
            "tests/src/lib.rs",
            "tests/src/bin",
            "examples",
            "guest-sdk",
        ]);
        let lightningd = match real {
            Some(p) => {
                let v = facts::command_line(&p.display().to_string(), &["--version"]);
                format!("{} ({v})", p.display())
            }
            None => "not set (LIGHTNINGD): the stand-in only".into(),
        };
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            mem_gib,
            kernel: facts::command_line("uname", &["-sr"]),
            date: facts::command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            rustc: facts::command_line("rustc", &["--version"]),
            commit,
            lightningd,
        }
    }
}
