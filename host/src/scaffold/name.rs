//! The plugin name `cln-autoreload new` derives from its PATH, and the
//! rules that name must meet.
//!
//! Owns: [`PluginName`] and why a name is refused. Must not: touch the
//! file system (the caller checks PATH itself).

use std::fmt;

/// A name every template can use as is: the plugin's file name, its
/// cargo package name, and the stem of its option and method names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginName(String);

/// Why a name was refused, in words for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot use `{name}` as a plugin name: {why}")]
pub struct BadName {
    /// The name as given.
    pub name: String,
    /// Which rule it breaks.
    pub why: String,
}

/// Names cargo refuses for a package (Rust's own crates and keywords):
/// the Rust templates could not build under them.
const CARGO_RESERVED: &[&str] = &[
    "test",
    "std",
    "core",
    "alloc",
    "proc_macro",
    "proc-macro",
    "self",
    "super",
    "crate",
    "build",
    "deps",
    "examples",
    "incremental",
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "static",
    "struct",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
];

impl PluginName {
    /// Checks `name` against what lightningd, cargo and Python accept.
    ///
    /// lightningd takes a plugin's option names only in lowercase ASCII
    /// letters, digits, `-` and `_` (`plugin_opt_add` in
    /// lightningd/plugin.c), and the generated plugin's option is
    /// `NAME-greeting`; a plugin directory's scan refuses other
    /// punctuation in a file name too. cargo wants a package name to start
    /// with a letter. The `autoreload-` prefix is cln-autoreload's own.
    pub fn parse(name: &str) -> Result<PluginName, BadName> {
        let bad = |why: String| BadName {
            name: name.to_owned(),
            why,
        };
        let Some(first) = name.chars().next() else {
            return Err(bad("it is empty".into()));
        };
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            return Err(bad(format!(
                "{c:?} is not allowed: lightningd accepts a plugin's option names (here `{name}-greeting`) only in lowercase letters a-z, digits, `-` and `_`"
            )));
        }
        if !first.is_ascii_lowercase() {
            return Err(bad(
                "it must start with a letter (cargo refuses a package name starting otherwise)"
                    .into(),
            ));
        }
        if name.starts_with("autoreload") {
            return Err(bad(
                "names starting with `autoreload` are cln-autoreload's own (its options and methods)"
                    .into(),
            ));
        }
        if CARGO_RESERVED.contains(&name) {
            return Err(bad(format!(
                "cargo reserves `{name}` (a Rust keyword or one of its own names)"
            )));
        }
        Ok(PluginName(name.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name with `-` as `_`: a Python module or Rust identifier.
    pub fn snake(&self) -> String {
        self.0.replace('-', "_")
    }
}

impl fmt::Display for PluginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lightningd_and_cargo_take() {
        for ok in ["my-plugin", "summary2", "a_b", "x"] {
            assert_eq!(PluginName::parse(ok).map(|n| n.0), Ok(ok.to_string()));
        }
        assert_eq!(
            PluginName::parse("my-plugin").map(|n| n.snake()),
            Ok("my_plugin".into())
        );
    }

    #[test]
    fn names_refused_say_why() {
        for (bad, why) in [
            ("", "empty"),
            ("My-Plugin", "lowercase"),
            ("my.plugin", "'.' is not allowed"),
            ("my plugin", "' ' is not allowed"),
            ("2fast", "start with a letter"),
            ("-x", "start with a letter"),
            ("autoreload-x", "cln-autoreload's own"),
            ("test", "cargo reserves"),
            ("plügin", "'ü' is not allowed"),
        ] {
            let e = PluginName::parse(bad).expect_err(bad);
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }
}
