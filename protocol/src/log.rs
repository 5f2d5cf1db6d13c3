//! Log levels in a plugin's `log` notification.

/// A level lightningd logs at (`common/status_levels.h` `enum log_level`,
/// without the two `io` levels, which a plugin may not use).
///
/// ```
/// use cln_protocol::LogLevel;
/// assert_eq!(LogLevel::parse("warn"), Some(LogLevel::Unusual));
/// assert_eq!(LogLevel::parse("ERROR"), Some(LogLevel::Broken));
/// assert_eq!(LogLevel::parse("io"), None);
/// assert_eq!(LogLevel::Unusual.as_str(), "unusual");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `trace` (`LOG_TRACE`).
    Trace,
    /// `debug` (`LOG_DBG`).
    Debug,
    /// `info` (`LOG_INFORM`), also the level of a `log` without one.
    Info,
    /// `unusual` (`LOG_UNUSUAL`), alias `warn`.
    Unusual,
    /// `broken` (`LOG_BROKEN`), alias `error`.
    Broken,
}

/// Every name a plugin's `log` notification may give as `params.level`:
/// `ll_names` in `common/status_levels.c` (lines 5–13) without `io`, and
/// the aliases `log_level_parse` adds (`error` → broken, `warn` → unusual,
/// lines 39–47). lightningd compares them ignoring case.
pub const LOG_LEVEL_NAMES: &[&str] = &[
    "trace", "debug", "info", "unusual", "broken", "warn", "error",
];

impl LogLevel {
    /// lightningd's name for the level (`ll_names`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Unusual => "unusual",
            LogLevel::Broken => "broken",
        }
    }

    /// The level a plugin's `log` notification names, as lightningd reads
    /// it (`log_level_parse`, case-insensitive, with the `warn` and `error`
    /// aliases; `plugin_log_handle` in `lightningd/plugin.c`, lines
    /// 494–505, then refuses the `io` levels). `None` is what lightningd
    /// answers "Unknown log-level" to, killing the plugin.
    pub fn parse(name: &str) -> Option<LogLevel> {
        let all = [
            LogLevel::Trace,
            LogLevel::Debug,
            LogLevel::Info,
            LogLevel::Unusual,
            LogLevel::Broken,
        ];
        if let Some(l) = all
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(name))
        {
            return Some(l);
        }
        if "error".eq_ignore_ascii_case(name) {
            Some(LogLevel::Broken)
        } else if "warn".eq_ignore_ascii_case(name) {
            Some(LogLevel::Unusual)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_parses() {
        for n in LOG_LEVEL_NAMES {
            assert!(LogLevel::parse(n).is_some(), "{n}");
        }
        assert_eq!(LogLevel::parse("Info"), Some(LogLevel::Info));
        assert_eq!(LogLevel::parse("unusal"), None);
    }
}
