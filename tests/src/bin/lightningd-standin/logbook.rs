//! lightningd's log: kept in memory for `getlog`, appended to `--log-file`.

use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Unusual,
    Broken,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Unusual => "UNUSUAL",
            Level::Broken => "BROKEN",
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            Level::Broken => "**BROKEN**",
            l => l.name(),
        }
    }

    /// Level names as plugins and `getlog` spell them.
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "io" | "trace" | "debug" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "unusual" | "warn" => Some(Level::Unusual),
            "broken" | "error" => Some(Level::Broken),
            _ => None,
        }
    }
}

/// lightningd's log keeps trace with debug here: the stand-in's log has no
/// trace or io levels of its own.
impl From<cln_protocol::LogLevel> for Level {
    fn from(l: cln_protocol::LogLevel) -> Level {
        use cln_protocol::LogLevel as L;
        match l {
            L::Trace | L::Debug => Level::Debug,
            L::Info => Level::Info,
            L::Unusual => Level::Unusual,
            L::Broken => Level::Broken,
        }
    }
}

#[derive(Serialize, Clone)]
pub struct Entry {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub time: String,
    pub source: String,
    pub log: String,
    #[serde(skip)]
    pub level: Level,
}

struct Inner {
    entries: Vec<Entry>,
    bytes: usize,
    file: Option<File>,
}

pub struct LogBook {
    inner: Mutex<Inner>,
    start: Instant,
    pub created_at: f64,
    echo_stderr: bool,
}

/// `2026-11-26T12:00:00.000Z`
pub fn timestamp() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let ms = d.subsec_millis();
    let days = (secs / 86400) as i64;
    let sod = secs % 86400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

impl LogBook {
    pub fn new(file: Option<File>) -> Self {
        LogBook {
            inner: Mutex::new(Inner {
                entries: Vec::new(),
                bytes: 0,
                file,
            }),
            start: Instant::now(),
            created_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default(),
            echo_stderr: std::env::var_os("STANDIN_LOG_STDERR").is_some_and(|v| v != "0"),
        }
    }

    pub fn log(&self, level: Level, source: &str, text: &str) {
        let el = self.start.elapsed();
        let entry = Entry {
            kind: level.name(),
            time: format!("{}.{:09}", el.as_secs(), el.subsec_nanos()),
            source: source.to_string(),
            log: text.to_string(),
            level,
        };
        let line = format!(
            "{} {:<7} {}: {}\n",
            timestamp(),
            level.file_name(),
            source,
            text
        );
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.bytes += entry.log.len() + entry.source.len();
        g.entries.push(entry);
        if let Some(f) = g.file.as_mut() {
            let _ = f.write_all(line.as_bytes());
        }
        drop(g);
        if self.echo_stderr {
            eprint!("{line}");
        }
    }

    /// Entries at `min` or above, in order.
    pub fn entries(&self, min: Level) -> (Vec<Entry>, usize) {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (
            g.entries
                .iter()
                .filter(|e| e.level >= min)
                .cloned()
                .collect(),
            g.bytes,
        )
    }

    pub fn flush(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = g.file.as_mut() {
            let _ = f.flush();
        }
    }
}
