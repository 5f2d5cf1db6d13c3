//! `cln-autoreload new [--lang python|rust|wasm] PATH`: a new plugin
//! project that runs under the host at once and reloads on save, as
//! `cargo new` or `spin new` would make one.
//!
//! - this module: checking PATH, writing the files, and what is printed;
//! - `name`: the plugin name PATH gives, and the rules it must meet;
//! - `source`: where the guest SDK and the Python state helper come from;
//! - `templates`: the files of each kind of project.
//!
//! Owns: creating the project directory and its files. Must not: write
//! into a directory that has anything in it, build or run the project
//! (the printed lines say how), or be used by the host.

mod name;
mod source;
mod templates;

pub use name::{BadName, PluginName};
pub use source::Source;

use anyhow::Context as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The kind of plugin project to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Lang {
    /// A pyln-client plugin (Python 3), with a pytest test.
    #[default]
    Python,
    /// A native plugin with the `cln-plugin` crate.
    Rust,
    /// A Rust plugin with the guest SDK, built for `wasm32-wasip1`.
    Wasm,
}

/// What `cln-autoreload new` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The kind of project.
    pub lang: Lang,
    /// The directory to create; its last component names the plugin.
    pub path: PathBuf,
}

/// Why a project was not created.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// PATH exists with something in it.
    #[error("{0} already exists and is not empty: give a new directory (or an empty one)")]
    NotEmpty(PathBuf),
    /// PATH is a file.
    #[error("{0} is a file: give a directory to create")]
    NotADirectory(PathBuf),
    /// PATH has no last component to name the plugin after.
    #[error("{0} does not end in a name: give the plugin's directory, e.g. `my-plugin`")]
    NoName(PathBuf),
    /// The name lightningd (or cargo) would not accept.
    #[error(transparent)]
    BadName(#[from] BadName),
}

/// A created project.
#[derive(Debug, Clone)]
pub struct Created {
    /// Its directory, absolute.
    pub dir: PathBuf,
    /// The plugin's name.
    pub name: PluginName,
    /// The kind.
    pub lang: Lang,
    /// The file lightningd is to run once built, absolute.
    pub plugin: PathBuf,
    /// The files written, relative to `dir`.
    pub files: Vec<PathBuf>,
    /// Where the SDK and the state helper come from.
    pub source: Source,
}

/// Checks PATH and its name, without writing anything.
fn check(opts: &Options) -> Result<(PathBuf, PluginName), Refused> {
    let dir = std::path::absolute(&opts.path).unwrap_or_else(|_| opts.path.clone());
    // `a/b/..` and `.` name nothing a reader can see in the path.
    let Some(last) = dir.file_name().and_then(|n| n.to_str()) else {
        return Err(Refused::NoName(opts.path.clone()));
    };
    if last == ".." || last == "." {
        return Err(Refused::NoName(opts.path.clone()));
    }
    let name = PluginName::parse(last)?;
    match std::fs::read_dir(&dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Refused::NotEmpty(opts.path.clone()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(Refused::NotADirectory(opts.path.clone()))
        }
        Err(_) if dir.is_file() => return Err(Refused::NotADirectory(opts.path.clone())),
        // Not there yet (or unreadable: creating it says why).
        Err(_) => {}
    }
    Ok((dir, name))
}

/// The file lightningd runs, once the project is built.
fn plugin_file(lang: Lang, dir: &Path, name: &PluginName) -> PathBuf {
    match lang {
        Lang::Python => dir.join(format!("{name}.py")),
        Lang::Rust => dir.join("target/debug").join(name.as_str()),
        Lang::Wasm => dir.join(format!("target/wasm32-wasip1/debug/{name}.wasm")),
    }
}

/// Creates the project; `Err` is either a [`Refused`] (nothing written)
/// or an I/O error naming the file.
pub fn create(opts: &Options, host: &Path) -> anyhow::Result<Created> {
    let (dir, name) = check(opts)?;
    let plugin = plugin_file(opts.lang, &dir, &name);
    let source = Source::for_project(&dir);
    let values = templates::Values {
        name: &name,
        source: &source,
        plugin_path: &plugin,
        host,
    };
    let files = templates::files(opts.lang, &values);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = vec![];
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        write_new(&path, &f.text, f.executable)
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(f.path);
    }
    Ok(Created {
        dir,
        name,
        lang: opts.lang,
        plugin,
        files: written,
        source,
    })
}

/// Writes a file that must not exist yet (nothing is ever overwritten,
/// even if something appears in PATH while it is being filled).
fn write_new(path: &Path, text: &str, executable: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if executable { 0o755 } else { 0o644 })
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// What to do next, for the terminal: how to build, the lightningd line,
/// and the `cln-autoreload dev` line.
pub fn next_steps(c: &Created, host: &Path) -> String {
    let dir = c.dir.display();
    let plugin = c.plugin.display();
    let host = host.display();
    let name = &c.name;
    let files: Vec<String> = c.files.iter().map(|f| f.display().to_string()).collect();
    let (kind, first) = match c.lang {
        Lang::Python => (
            "Python (pyln-client)",
            format!("  cd {dir} && pip install -r requirements.txt"),
        ),
        Lang::Rust => ("Rust (cln-plugin)", format!("  cd {dir} && cargo build")),
        Lang::Wasm => (
            "WebAssembly (Rust, cln-autoreload-guest)",
            format!("  rustup target add wasm32-wasip1   # once\n  cd {dir} && cargo build"),
        ),
    };
    format!(
        "Created the {kind} plugin `{name}` in {dir}:\n  {}\n\n\
         First:\n{first}\n\n\
         Start it under lightningd (every save reloads it):\n  \
         lightningd --plugin={host} --autoreload-plugin={plugin}\n  \
         lightning-cli {name}-hello Alice\n\n\
         Or try it without a node:\n  \
         {host} dev {plugin}\n",
        files.join(", ")
    )
}

/// Runs `cln-autoreload new`; returns the exit code: 0 when created, 2
/// when refused (nothing written), 1 when writing failed.
pub fn main(opts: Options) -> u8 {
    let host = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .unwrap_or_else(|_| PathBuf::from("cln-autoreload"));
    match create(&opts, &host) {
        Ok(c) => {
            print!("{}", next_steps(&c, &host));
            0
        }
        Err(e) if e.downcast_ref::<Refused>().is_some() => {
            eprintln!("cln-autoreload new: {e}");
            2
        }
        Err(e) => {
            eprintln!("cln-autoreload new: {e:#}");
            1
        }
    }
}
