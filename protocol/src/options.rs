//! Option types a manifest may declare.

/// The `type` of a manifest option: the five names
/// `lightningd/plugin.c` `plugin_opt_add` accepts at v26.06 (lines
/// 1094–1133); any other kills the plugin ("Only \"string\", \"int\",
/// \"bool\", and \"flag\" options are supported", line 1133, which
/// forgets `string-conceal`).
///
/// ```
/// use cln_protocol::OptionType;
/// assert_eq!(OptionType::from_name("string-conceal"), Some(OptionType::StringConceal));
/// assert_eq!(OptionType::Flag.as_str(), "flag");
/// assert_eq!(OptionType::from_name("float"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionType {
    /// `"string"`: any text; its value in `init` is a JSON string.
    String,
    /// `"int"`: an integer; its value in `init` is a JSON number.
    Int,
    /// `"bool"`: `true` or `false`; cannot be `multi`.
    Bool,
    /// `"flag"`: given or not; `true` in `init` only when given (absent
    /// otherwise); its default may only be `false`; cannot be `multi`.
    Flag,
    /// `"string-conceal"`: a string lightningd does not show in
    /// `listconfigs`.
    StringConceal,
}

impl OptionType {
    /// Every type, in the order lightningd's error message lists them.
    pub const ALL: [OptionType; 5] = [
        OptionType::String,
        OptionType::Int,
        OptionType::Bool,
        OptionType::StringConceal,
        OptionType::Flag,
    ];

    /// The manifest name of this type (`"string"`, `"int"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            OptionType::String => "string",
            OptionType::Int => "int",
            OptionType::Bool => "bool",
            OptionType::Flag => "flag",
            OptionType::StringConceal => "string-conceal",
        }
    }

    /// The type a manifest names, if lightningd accepts it (exact,
    /// case-sensitive: `json_tok_streq`).
    pub fn from_name(name: &str) -> Option<OptionType> {
        OptionType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}
