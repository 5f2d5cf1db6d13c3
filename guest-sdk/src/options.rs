//! Options a plugin adds to lightningd's command line and config file.
//!
//! Declare them with [`Builder::option`](crate::Builder::option); read their
//! values with [`Plugin::option`](crate::Plugin::option) and friends.
//!
//! ```
//! use cln_autoreload_guest::options::ConfigOption;
//!
//! let greeting = ConfigOption::string("hello-greeting", "Hello", "What to say");
//! let retries = ConfigOption::int("hello-retries", 3, "How often to retry").dynamic();
//! let peers = ConfigOption::string("hello-peer", "", "A peer to greet").no_default().multi();
//! assert_eq!(peers.to_json()["multi"], true);
//! ```

use serde_json::{json, Map, Value};

/// The type of an option, as lightningd's manifest spells it: the
/// protocol crate's, so that the SDK offers exactly the types lightningd
/// accepts. A `Flag` that is not given is absent from `init`;
/// [`Plugin::option`](crate::Plugin::option) answers `false` for it.
///
/// ```
/// use cln_autoreload_guest::options::OptionType;
/// assert_eq!(OptionType::StringConceal.as_str(), "string-conceal");
/// ```
pub use cln_protocol::OptionType;

/// One option in the manifest: its name, type, description, and optionally
/// a default, `multi` (may be given several times, the value is an array)
/// and `dynamic` (may be changed at run time with `setconfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigOption {
    name: String,
    kind: OptionType,
    description: String,
    default: Option<Value>,
    multi: bool,
    dynamic: bool,
}

impl ConfigOption {
    /// An option of type `kind` with no default: it is absent from `init`
    /// unless the user sets it.
    ///
    /// ```
    /// use cln_autoreload_guest::options::{ConfigOption, OptionType};
    /// let o = ConfigOption::new("my-path", OptionType::String, "Where to write");
    /// assert!(o.default_value().is_none());
    /// ```
    pub fn new(name: impl Into<String>, kind: OptionType, description: impl Into<String>) -> Self {
        ConfigOption {
            name: name.into(),
            kind,
            description: description.into(),
            default: None,
            multi: false,
            dynamic: false,
        }
    }

    /// A string option with a default.
    ///
    /// ```
    /// use cln_autoreload_guest::options::ConfigOption;
    /// let o = ConfigOption::string("hello-greeting", "Hello", "What to say");
    /// assert_eq!(o.to_json()["default"], "Hello");
    /// ```
    pub fn string(
        name: impl Into<String>,
        default: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self::new(name, OptionType::String, description).with_default(Value::String(default.into()))
    }

    /// An integer option with a default.
    ///
    /// ```
    /// use cln_autoreload_guest::options::ConfigOption;
    /// let o = ConfigOption::int("my-limit", 10, "How many");
    /// assert_eq!(o.to_json()["type"], "int");
    /// ```
    pub fn int(name: impl Into<String>, default: i64, description: impl Into<String>) -> Self {
        Self::new(name, OptionType::Int, description).with_default(Value::from(default))
    }

    /// A boolean option with a default.
    ///
    /// ```
    /// use cln_autoreload_guest::options::ConfigOption;
    /// let o = ConfigOption::bool("my-verbose", false, "Say more");
    /// assert_eq!(o.to_json()["default"], false);
    /// ```
    pub fn bool(name: impl Into<String>, default: bool, description: impl Into<String>) -> Self {
        Self::new(name, OptionType::Bool, description).with_default(Value::Bool(default))
    }

    /// A flag (`--my-flag`, no value), declared with default `false`.
    ///
    /// ```
    /// use cln_autoreload_guest::options::ConfigOption;
    /// let o = ConfigOption::flag("my-flag", "Turn it on");
    /// assert_eq!(o.to_json()["type"], "flag");
    /// ```
    pub fn flag(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self::new(name, OptionType::Flag, description).with_default(Value::Bool(false))
    }

    /// A string option that lightningd does not show in `listconfigs`
    /// (passwords, keys), with a default.
    ///
    /// ```
    /// use cln_autoreload_guest::options::ConfigOption;
    /// let o = ConfigOption::string_conceal("my-token", "", "API token");
    /// assert_eq!(o.to_json()["type"], "string-conceal");
    /// ```
    pub fn string_conceal(
        name: impl Into<String>,
        default: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self::new(name, OptionType::StringConceal, description)
            .with_default(Value::String(default.into()))
    }

    /// Replaces the default with `default` (which should have the option's
    /// JSON type).
    ///
    /// ```
    /// use cln_autoreload_guest::options::{ConfigOption, OptionType};
    /// use serde_json::json;
    /// let o = ConfigOption::new("my-n", OptionType::Int, "n").with_default(json!(5));
    /// assert_eq!(o.default_value(), Some(&json!(5)));
    /// ```
    pub fn with_default(mut self, default: Value) -> Self {
        self.default = Some(default);
        self
    }

    /// Drops the default: the option is absent from `init` unless set.
    ///
    /// ```
    /// use cln_autoreload_guest::options::ConfigOption;
    /// let o = ConfigOption::string("my-name", "", "A name").no_default();
    /// assert!(o.to_json().get("default").is_none());
    /// ```
    pub fn no_default(mut self) -> Self {
        self.default = None;
        self
    }

    /// Makes it a `multi` option: it may be given several times and its
    /// value in `init` is an array of all the values given (lightningd allows
    /// this for `string` and `int`).
    ///
    /// ```
    /// use cln_autoreload_guest::options::ConfigOption;
    /// let o = ConfigOption::string("my-peer", "", "A peer").no_default().multi();
    /// assert_eq!(o.to_json()["multi"], true);
    /// ```
    pub fn multi(mut self) -> Self {
        self.multi = true;
        self
    }

    /// Makes it `dynamic`: `lightning-cli setconfig NAME VALUE` changes it
    /// while the plugin runs (see [`Builder::on_setconfig`](crate::Builder::on_setconfig)).
    ///
    /// ```
    /// use cln_autoreload_guest::options::ConfigOption;
    /// let o = ConfigOption::int("my-limit", 10, "How many").dynamic();
    /// assert_eq!(o.to_json()["dynamic"], true);
    /// ```
    pub fn dynamic(mut self) -> Self {
        self.dynamic = true;
        self
    }

    /// The option's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The option's type.
    pub fn kind(&self) -> OptionType {
        self.kind
    }

    /// The declared default, if any.
    pub fn default_value(&self) -> Option<&Value> {
        self.default.as_ref()
    }

    /// Whether it is a `multi` option.
    pub fn is_multi(&self) -> bool {
        self.multi
    }

    /// Whether it is a `dynamic` option.
    pub fn is_dynamic(&self) -> bool {
        self.dynamic
    }

    /// The option as a manifest entry.
    ///
    /// ```
    /// use cln_autoreload_guest::options::ConfigOption;
    /// use serde_json::json;
    /// assert_eq!(
    ///     ConfigOption::int("my-n", 1, "n").dynamic().to_json(),
    ///     json!({"name": "my-n", "type": "int", "description": "n", "default": 1, "dynamic": true})
    /// );
    /// ```
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("type".into(), json!(self.kind.as_str()));
        m.insert("description".into(), json!(self.description));
        if let Some(default) = &self.default {
            m.insert("default".into(), default.clone());
        }
        if self.multi {
            m.insert("multi".into(), Value::Bool(true));
        }
        if self.dynamic {
            m.insert("dynamic".into(), Value::Bool(true));
        }
        Value::Object(m)
    }

    /// Converts a `setconfig` value to this option's JSON type. lightningd
    /// sends `val` as a string even for `int` and `bool` options; a flag
    /// may come without `val` (meaning `true`). A `multi` option's new value
    /// is a one-element array.
    ///
    /// ```
    /// use cln_autoreload_guest::options::ConfigOption;
    /// use serde_json::json;
    /// let o = ConfigOption::int("my-n", 1, "n").dynamic();
    /// assert_eq!(o.parse_setconfig(Some(&json!("5"))), Ok(json!(5)));
    /// assert!(o.parse_setconfig(Some(&json!("five"))).is_err());
    /// ```
    pub fn parse_setconfig(&self, val: Option<&Value>) -> Result<Value, String> {
        let value = match (self.kind, val) {
            (OptionType::Flag, None | Some(Value::Null)) => Value::Bool(true),
            (_, None | Some(Value::Null)) => {
                return Err(format!("{}: a value is needed", self.name))
            }
            (OptionType::String | OptionType::StringConceal, Some(Value::String(s))) => {
                Value::String(s.clone())
            }
            (OptionType::Int, Some(Value::String(s))) => match s.trim().parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => return Err(format!("{}: '{s}' is not an integer", self.name)),
            },
            (OptionType::Int, Some(Value::Number(n))) if n.is_i64() || n.is_u64() => {
                Value::Number(n.clone())
            }
            (OptionType::Bool | OptionType::Flag, Some(Value::String(s))) => match s.trim() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(format!("{}: '{s}' is not true or false", self.name)),
            },
            (OptionType::Bool | OptionType::Flag, Some(Value::Bool(b))) => Value::Bool(*b),
            (kind, Some(other)) => {
                return Err(format!(
                    "{}: {other} is not a valid {} value",
                    self.name,
                    kind.as_str()
                ));
            }
        };
        Ok(if self.multi {
            Value::Array(vec![value])
        } else {
            value
        })
    }
}
