//! Where a generated project gets cln-autoreload's own pieces from: the
//! guest SDK crate (wasm template) and the Python state helper (python
//! template).
//!
//! A project made inside a cln-autoreload checkout uses that checkout by
//! relative path; one made elsewhere by a binary built from a checkout
//! that is still there uses it by absolute path; otherwise the published
//! packages by version. Owns: finding the checkout and the dependency
//! lines. Must not: write anything.

use std::path::{Component, Path, PathBuf};

/// The version of the guest SDK and the state helper that a project
/// depends on when no checkout is at hand (they share the host's).
pub const PUBLISHED: &str = env!("CARGO_PKG_VERSION");

/// Where the pieces come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The checkout the project lies in; `relative` leads from the
    /// project to it.
    Around {
        checkout: PathBuf,
        relative: PathBuf,
    },
    /// The checkout this binary was built from.
    BuiltFrom { checkout: PathBuf },
    /// crates.io and PyPI.
    Published,
}

impl Source {
    /// The source for a project at `project` (absolute, not yet created).
    pub fn for_project(project: &Path) -> Source {
        if let Some((depth, checkout)) = project
            .ancestors()
            .skip(1)
            .enumerate()
            .find(|(_, a)| is_checkout(a))
        {
            let mut relative = PathBuf::new();
            for _ in 0..=depth {
                relative.push(Component::ParentDir);
            }
            return Source::Around {
                checkout: checkout.to_path_buf(),
                relative,
            };
        }
        // host/ in the checkout `cargo build` or `cargo install --path`
        // ran in; a crates.io build's sits in cargo's registry instead.
        let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        match std::fs::canonicalize(&built) {
            Ok(checkout) if is_checkout(&checkout) => Source::BuiltFrom { checkout },
            _ => Source::Published,
        }
    }

    /// The guest SDK's line in `[dependencies]`.
    pub fn guest_dependency(&self) -> String {
        match self {
            Source::Around { relative, .. } => format!(
                "cln-autoreload-guest = {{ path = {:?} }}",
                relative.join("guest-sdk").display().to_string()
            ),
            Source::BuiltFrom { checkout } => format!(
                "cln-autoreload-guest = {{ path = {:?} }}",
                checkout.join("guest-sdk").display().to_string()
            ),
            Source::Published => format!("cln-autoreload-guest = \"{}\"", major_minor()),
        }
    }

    /// The state helper's line in `requirements.txt`.
    pub fn state_requirement(&self) -> String {
        match self {
            Source::Around { checkout, .. } | Source::BuiltFrom { checkout } => format!(
                "cln-autoreload-state @ file://{}",
                checkout.join("python").display()
            ),
            Source::Published => format!("cln-autoreload-state>={}", major_minor()),
        }
    }

    /// One sentence for the generated README: where the pieces come from.
    pub fn explain(&self) -> String {
        match self {
            Source::Around { checkout, relative } => format!(
                "by path from the cln-autoreload checkout this project lies in ({}, `{}` from here)",
                checkout.display(),
                relative.display()
            ),
            Source::BuiltFrom { checkout } => format!(
                "by path from the cln-autoreload checkout that `cln-autoreload new` was built from ({}): move the project or that checkout and the path needs changing; once the packages are published, `cln-autoreload-guest = \"{v}\"` and `cln-autoreload-state` work instead",
                checkout.display(),
                v = major_minor()
            ),
            Source::Published => format!(
                "by version from crates.io and PyPI (`cln-autoreload-guest = \"{}\"`, `cln-autoreload-state`)",
                major_minor()
            ),
        }
    }
}

/// `0.1` for `0.1.3`: what a dependency on a compatible release says.
fn major_minor() -> String {
    let mut parts = PUBLISHED.split('.');
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => format!("{major}.{minor}"),
        _ => PUBLISHED.to_owned(),
    }
}

/// `dir` holds a cln-autoreload checkout: its guest SDK crate and its
/// Python helper.
fn is_checkout(dir: &Path) -> bool {
    let sdk = std::fs::read_to_string(dir.join("guest-sdk/Cargo.toml")).unwrap_or_default();
    sdk.contains("name = \"cln-autoreload-guest\"")
        && dir.join("python/cln_autoreload_state.py").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_inside_the_checkout_uses_it_by_relative_path() {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .canonicalize()
            .expect("the checkout");
        let s = Source::for_project(&checkout.join("examples/my-plugin"));
        assert_eq!(
            s.guest_dependency(),
            "cln-autoreload-guest = { path = \"../../guest-sdk\" }"
        );
        assert!(s.state_requirement().ends_with("/python"), "{s:?}");
    }

    #[test]
    fn published_lines() {
        assert_eq!(
            Source::Published.guest_dependency(),
            format!("cln-autoreload-guest = \"{}\"", major_minor())
        );
        assert!(major_minor().matches('.').count() == 1);
    }
}
