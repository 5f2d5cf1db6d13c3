//! The `[PLUGIN::]VALUE` form of the options that apply to one plugin or
//! to all: `hello.py::false` is for the plugin whose file is `hello.py`,
//! `false` for every plugin.
//!
//! Owns: splitting the `PLUGIN::` prefix off (once, for every such
//! option), which value applies to a plugin (its own last value over the
//! last value for all), and whether a value named it or was meant for all
//! ([`Scope`]: a caller may treat the two differently). Must not: know
//! what a value means (each option's parser, given to [`PerPlugin::parse`],
//! does) or log: the caller words its warnings.

/// Separates a plugin's file name from the value (`probe.py::on`).
pub const BIND: &str = "::";

/// Whether a value named the plugin or was meant for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `PLUGIN::VALUE`.
    Named,
    /// `VALUE`, for every plugin.
    All,
}

/// One value of a `[PLUGIN::]VALUE` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scoped<T> {
    /// The plugin the value names (`None`: every plugin).
    pub plugin: Option<String>,
    /// The value as given, prefix included (for messages).
    pub raw: String,
    /// The text after the prefix.
    pub text: String,
    /// That text, parsed by the option's parser.
    pub value: T,
}

impl<T> Scoped<T> {
    /// Named or for all.
    pub fn scope(&self) -> Scope {
        match self.plugin {
            Some(_) => Scope::Named,
            None => Scope::All,
        }
    }

    /// Whether it applies to plugin `name`.
    pub fn applies_to(&self, name: &str) -> bool {
        self.plugin.as_deref().is_none_or(|p| p == name)
    }
}

/// The values of one `[PLUGIN::]VALUE` option, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerPlugin<T> {
    entries: Vec<Scoped<T>>,
}

impl<T> Default for PerPlugin<T> {
    fn default() -> Self {
        PerPlugin { entries: vec![] }
    }
}

impl<T> PerPlugin<T> {
    /// Reads the values, each one's text after `PLUGIN::` with `parse`.
    pub fn parse<S: AsRef<str>>(values: &[S], parse: impl Fn(&str) -> T) -> PerPlugin<T> {
        let mut out = PerPlugin::default();
        for v in values {
            out.push(v.as_ref(), &parse);
        }
        out
    }

    /// Adds one value.
    pub fn push(&mut self, raw: &str, parse: impl Fn(&str) -> T) {
        let (plugin, text) = match raw.split_once(BIND) {
            Some((n, rest)) => (Some(n.to_owned()), rest),
            None => (None, raw),
        };
        self.entries.push(Scoped {
            plugin,
            raw: raw.to_owned(),
            text: text.to_owned(),
            value: parse(text),
        });
    }

    /// Whether no value was given.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every value, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Scoped<T>> {
        self.entries.iter()
    }

    /// The value that decides for plugin `name`: its own last value, else
    /// the last value for all, else `None`.
    pub fn last_for(&self, name: &str) -> Option<&Scoped<T>> {
        let last = |scope| {
            self.entries
                .iter()
                .rev()
                .find(|e| e.applies_to(name) && e.scope() == scope)
        };
        last(Scope::Named).or_else(|| last(Scope::All))
    }

    /// The values that apply to plugin `name` (its own and those for all),
    /// in the order given.
    pub fn for_plugin<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Scoped<T>> + 'a {
        self.entries.iter().filter(move |e| e.applies_to(name))
    }

    /// The values naming a plugin that is not among `names`, with the name.
    pub fn unknown<'a>(
        &'a self,
        names: &'a [String],
    ) -> impl Iterator<Item = (&'a Scoped<T>, &'a str)> + 'a {
        self.entries.iter().filter_map(move |e| {
            let n = e.plugin.as_deref()?;
            (!names.iter().any(|x| x == n)).then_some((e, n))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_value_wins_over_a_value_for_all_whatever_the_order() {
        let p = PerPlugin::parse(&["a.py::1", "2", "b.py::3", "4"], |s| s.to_owned());
        let a = p.last_for("a.py").map(|e| (e.value.as_str(), e.scope()));
        assert_eq!(a, Some(("1", Scope::Named)));
        let c = p.last_for("c.py").map(|e| (e.value.as_str(), e.scope()));
        assert_eq!(c, Some(("4", Scope::All)));
        let texts: Vec<&str> = p.for_plugin("b.py").map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["2", "3", "4"]);
        assert!(PerPlugin::parse(&["a.py::1"], |s| s.to_owned())
            .last_for("b.py")
            .is_none());
    }

    #[test]
    fn only_the_first_separator_binds_and_unknown_names_are_found() {
        let p = PerPlugin::parse(&["x.py::a::b", "/p:rw"], |s| s.len());
        let first = p.iter().next().expect("two values");
        assert_eq!(first.plugin.as_deref(), Some("x.py"));
        assert_eq!((first.text.as_str(), first.value), ("a::b", 4));
        assert_eq!(first.raw, "x.py::a::b");
        let names = ["a.py".to_string()];
        let unknown: Vec<&str> = p.unknown(&names).map(|(_, n)| n).collect();
        assert_eq!(unknown, ["x.py"]);
    }
}
