//! Stands in for `wasm.rs` in a host built without the `wasm` feature
//! (`cargo install cln-autoreload --no-default-features`): no wasmtime in
//! the binary, and a `.wasm` plugin is refused with a message that says how
//! to get one that runs it.
//!
//! It has the same names as `wasm.rs` (the settings, [`Stop`], [`spawn`]),
//! so the supervisor, the options and `autoreload-status` compile and behave
//! the same in both builds: the `autoreload-wasm-*` options are still
//! registered and accepted (a lightningd config that sets them must not
//! stop lightningd from starting), they just have nothing to apply to.
//!
//! Owns: refusing wasm plugins. Must not: pretend to run them.

use super::{Instance, InstanceEvent};
use std::path::Path;

pub use super::wasm_settings::{
    CacheSettings, CompileRecord, Compiler, GrantedDir, ModuleSource, OptimizeError, Optimized,
    Priority, Settings, Tier, Urgency, OPT_COMPILER, OPT_RELOAD_PRIORITY, OPT_TIER,
};

/// Would tell a wasm instance to stop; there are none in this build, so
/// there is no value of it either.
#[derive(Debug)]
pub enum Stop {}

impl Stop {
    /// Nothing to stop: no value of this type exists.
    pub fn stop(&self) {
        match *self {}
    }
}

/// Refuses to start `path`: this host has no wasm runtime. The error's kind
/// is [`std::io::ErrorKind::Unsupported`], which the supervisor does not
/// treat specially (not "missing", "not executable" or "busy, retry"), so
/// its text reaches the plugin's log line and `autoreload-status` as it is.
pub fn spawn(
    path: &Path,
    _settings: &Settings,
    _urgency: Urgency,
    _report: impl Fn(InstanceEvent) + Send + Sync + Clone + 'static,
) -> std::io::Result<Instance> {
    Err(unsupported(path))
}

/// Nothing to optimize: this host runs no wasm module.
pub async fn optimize(path: &Path, _settings: &Settings) -> Result<Optimized, OptimizeError> {
    Err(OptimizeError::Unavailable(unsupported(path).to_string()))
}

/// The error [`spawn`] gives for `path`.
fn unsupported(path: &Path) -> std::io::Error {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        format!(
            "{name} is a WebAssembly module, but this cln-autoreload was built without wasm support: \
             rebuild or reinstall it with the default features (without --no-default-features)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wasm_plugin_is_refused_with_how_to_get_wasm_support() {
        let e = spawn(
            Path::new("/plugins/hello.wasm"),
            &Settings::default(),
            Urgency::Urgent,
            |_| {},
        )
        .expect_err("a host without the wasm feature must not start a .wasm plugin");
        assert_eq!(e.kind(), std::io::ErrorKind::Unsupported);
        assert_eq!(
            e.to_string(),
            "hello.wasm is a WebAssembly module, but this cln-autoreload was built without \
             wasm support: rebuild or reinstall it with the default features (without \
             --no-default-features)"
        );
        // The supervisor retries a busy file instead of reporting it; this
        // must not look like one.
        assert!(!super::super::native::is_busy(&e));
    }
}
