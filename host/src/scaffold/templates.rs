//! The files each kind of project starts with, compiled into the binary
//! from `templates/`, and how their placeholders are filled in.
//!
//! Template files are named so that neither git nor cargo takes them for
//! files of this repository (`gitignore`, `Cargo.toml.in`,
//! `cargo-config.toml`). Owns: the file list per language and the
//! placeholder values. Must not: decide where a project goes or write it.

use super::name::PluginName;
use super::source::Source;
use super::Lang;
use std::path::{Path, PathBuf};

/// One file of a new project.
pub struct File {
    /// Where it goes, relative to the project.
    pub path: PathBuf,
    /// Its text, placeholders filled in.
    pub text: String,
    /// It is run (the Python plugin itself).
    pub executable: bool,
}

/// What the placeholders stand for.
pub struct Values<'a> {
    /// The plugin's name.
    pub name: &'a PluginName,
    /// Where the SDK and the state helper come from.
    pub source: &'a Source,
    /// The file lightningd is to run, absolute (it may not exist yet).
    pub plugin_path: &'a Path,
    /// This binary, absolute.
    pub host: &'a Path,
}

/// The files of a new `lang` project.
pub fn files(lang: Lang, v: &Values<'_>) -> Vec<File> {
    let name = v.name.as_str();
    let snake = v.name.snake();
    let list: Vec<(String, &str, bool)> = match lang {
        Lang::Python => vec![
            (
                format!("{name}.py"),
                include_str!("templates/python/plugin.py"),
                true,
            ),
            (
                format!("test_{snake}.py"),
                include_str!("templates/python/test_plugin.py"),
                false,
            ),
            (
                "requirements.txt".into(),
                include_str!("templates/python/requirements.txt"),
                false,
            ),
            (
                "README.md".into(),
                include_str!("templates/python/README.md"),
                false,
            ),
            (
                ".gitignore".into(),
                include_str!("templates/python/gitignore"),
                false,
            ),
        ],
        Lang::Rust => vec![
            (
                "Cargo.toml".into(),
                include_str!("templates/rust/Cargo.toml.in"),
                false,
            ),
            (
                "src/main.rs".into(),
                include_str!("templates/rust/main.rs"),
                false,
            ),
            (
                "tests/plugin.rs".into(),
                include_str!("templates/rust/test.rs"),
                false,
            ),
            (
                "README.md".into(),
                include_str!("templates/rust/README.md"),
                false,
            ),
            (
                ".gitignore".into(),
                include_str!("templates/rust/gitignore"),
                false,
            ),
        ],
        Lang::Wasm => vec![
            (
                "Cargo.toml".into(),
                include_str!("templates/wasm/Cargo.toml.in"),
                false,
            ),
            (
                ".cargo/config.toml".into(),
                include_str!("templates/wasm/cargo-config.toml"),
                false,
            ),
            (
                "src/main.rs".into(),
                include_str!("templates/wasm/main.rs"),
                false,
            ),
            (
                "tests/plugin.rs".into(),
                include_str!("templates/wasm/test.rs"),
                false,
            ),
            (
                "README.md".into(),
                include_str!("templates/wasm/README.md"),
                false,
            ),
            (
                ".gitignore".into(),
                include_str!("templates/wasm/gitignore"),
                false,
            ),
        ],
    };
    list.into_iter()
        .map(|(path, text, executable)| File {
            path: PathBuf::from(path),
            text: fill(text, v),
            executable,
        })
        .collect()
}

/// `text` with every `{{placeholder}}` replaced.
fn fill(text: &str, v: &Values<'_>) -> String {
    let source_short = match v.source {
        Source::Published => "from crates.io",
        Source::Around { .. } | Source::BuiltFrom { .. } => {
            "by path from a cln-autoreload checkout (see README.md)"
        }
    };
    [
        ("{{name}}", v.name.to_string()),
        ("{{plugin_path}}", v.plugin_path.display().to_string()),
        ("{{host}}", v.host.display().to_string()),
        ("{{guest_dependency}}", v.source.guest_dependency()),
        ("{{state_requirement}}", v.source.state_requirement()),
        ("{{source_short}}", source_short.to_owned()),
        ("{{source}}", v.source.explain()),
    ]
    .iter()
    .fold(text.to_owned(), |t, (from, to)| t.replace(from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every placeholder of every template is one `fill` knows.
    #[test]
    fn no_placeholder_is_left() {
        let name = PluginName::parse("my-plugin").expect("a good name");
        let v = Values {
            name: &name,
            source: &Source::Published,
            plugin_path: Path::new("/p/my-plugin/my-plugin.py"),
            host: Path::new("/bin/cln-autoreload"),
        };
        for lang in [Lang::Python, Lang::Rust, Lang::Wasm] {
            for f in files(lang, &v) {
                assert!(
                    !f.text.contains("{{"),
                    "{lang:?} {}: {}",
                    f.path.display(),
                    f.text
                );
            }
        }
    }
}
