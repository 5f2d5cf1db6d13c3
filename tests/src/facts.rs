//! Facts the benchmark and soak reports record beside their figures: the
//! machine, its load, the commit measured.

use crate::root;

/// `cmd args` run in the workspace root: its trimmed output, or "unknown".
pub fn command_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .current_dir(root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The commit checked out, said to have uncommitted changes when any of
/// `paths` (what the report measures) has some.
pub fn commit(paths: &[&str]) -> String {
    let mut c = command_line("git", &["rev-parse", "--short=12", "HEAD"]);
    let mut args = vec!["status", "--porcelain", "--"];
    args.extend_from_slice(paths);
    let dirty = command_line("git", &args);
    if !dirty.is_empty() && dirty != "unknown" {
        c.push_str(" (with uncommitted changes)");
    }
    c
}

/// The load averages over 1, 5 and 15 minutes (`/proc/loadavg`).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The CPU's model name (`/proc/cpuinfo`).
pub fn cpu_model() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The machine's memory in GiB (`/proc/meminfo`).
pub fn mem_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0 / 1024.0)
}
