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
/// lines 39–47). lightningd compares them ignoring case. The names of
/// [`LevelName::ALL`], in that order.
pub const LOG_LEVEL_NAMES: &[&str] = &[
    "trace", "debug", "info", "unusual", "broken", "warn", "error",
];

/// A name a level is given by in a `log` or `message` notification: one
/// of lightningd's five, or one of the two aliases it reads (`warn`,
/// `error`; see [`LOG_LEVEL_NAMES`]). This is the level a plugin (the
/// guest SDK's `Level`) or the host (its own log lines) writes: the
/// aliases are kept apart because they are written as given.
///
/// ```
/// use cln_protocol::log::LevelName;
/// use cln_protocol::LogLevel;
/// assert_eq!("warn".parse::<LevelName>(), Ok(LevelName::Warn));
/// assert_eq!(LevelName::Warn.level(), LogLevel::Unusual);
/// assert_eq!(LevelName::Unusual.to_string(), "unusual");
/// assert!("WARN".parse::<LevelName>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum LevelName {
    /// `trace`: very chatty detail.
    Trace,
    /// `debug`: detail for developers.
    Debug,
    /// `info`: normal operation.
    Info,
    /// `unusual`: something odd, worth a look.
    Unusual,
    /// `warn`, lightningd's alias of `unusual`.
    Warn,
    /// `broken`: something is broken.
    Broken,
    /// `error`, lightningd's alias of `broken`.
    Error,
}

impl LevelName {
    /// Every name, in the order of [`LOG_LEVEL_NAMES`].
    pub const ALL: [LevelName; 7] = [
        LevelName::Trace,
        LevelName::Debug,
        LevelName::Info,
        LevelName::Unusual,
        LevelName::Broken,
        LevelName::Warn,
        LevelName::Error,
    ];

    /// The name, as written in the notification.
    pub fn as_str(self) -> &'static str {
        match self {
            LevelName::Trace => "trace",
            LevelName::Debug => "debug",
            LevelName::Info => "info",
            LevelName::Unusual => "unusual",
            LevelName::Warn => "warn",
            LevelName::Broken => "broken",
            LevelName::Error => "error",
        }
    }

    /// The level lightningd logs it at (the aliases resolved).
    pub fn level(self) -> LogLevel {
        match self {
            LevelName::Trace => LogLevel::Trace,
            LevelName::Debug => LogLevel::Debug,
            LevelName::Info => LogLevel::Info,
            LevelName::Unusual | LevelName::Warn => LogLevel::Unusual,
            LevelName::Broken | LevelName::Error => LogLevel::Broken,
        }
    }
}

impl core::fmt::Display for LevelName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A level name that is not one of [`LOG_LEVEL_NAMES`], exactly (as
/// written: [`LevelName`]'s `FromStr` does not ignore case, unlike
/// lightningd, so that a name reads back as it was written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLevel(pub String);

impl core::fmt::Display for UnknownLevel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unknown log level '{}'", self.0)
    }
}

impl std::error::Error for UnknownLevel {}

/// Its message: what code written when `FromStr` failed with a `String`
/// (`map_err(RpcError::invalid_params)`) still gets.
impl From<UnknownLevel> for String {
    fn from(e: UnknownLevel) -> String {
        e.to_string()
    }
}

impl core::str::FromStr for LevelName {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<LevelName, UnknownLevel> {
        LevelName::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| UnknownLevel(s.to_owned()))
    }
}

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
        LevelName::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(name))
            .map(LevelName::level)
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

    #[test]
    fn the_names_are_the_listed_ones_and_read_back() {
        let names: Vec<&str> = LevelName::ALL.iter().map(|l| l.as_str()).collect();
        assert_eq!(names, LOG_LEVEL_NAMES);
        for l in LevelName::ALL {
            assert_eq!(l.as_str().parse::<LevelName>(), Ok(l));
            assert_eq!(LogLevel::parse(l.as_str()), Some(l.level()));
        }
    }
}
