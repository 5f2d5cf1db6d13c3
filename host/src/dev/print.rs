//! What the dev node writes to the terminal.
//!
//! Owns: the print macros (the only way anything in `dev` writes to stdout
//! or stderr), the prompt's state, and how each thing the host says is
//! shown: log lines and notifications, the manifest's summary, results and
//! error objects. Must not: read the terminal, talk to the host, or decide
//! what to do about what it prints.

// Printing that does not panic when stdout or stderr is closed (`| head`).
// Each brings `Write` into scope itself, so callers need not.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
macro_rules! out_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}
macro_rules! err {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}
macro_rules! err_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($t)*);
    }};
}

use crate::manifest::HOST_PREFIX;
use serde_json::Value;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// How the dev node prints what it gets.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ui {
    /// Reading calls from stdin (reloads are announced on stdout) rather
    /// than running `--call`s (stdout holds only their results).
    pub(super) interactive: bool,
    /// stdin is a terminal: prompt.
    pub(super) tty: bool,
    /// Print debug log lines too.
    pub(super) verbose: bool,
}

/// The prompt is shown and nothing typed has been read yet.
pub(super) static AT_PROMPT: AtomicBool = AtomicBool::new(false);

impl Ui {
    /// Prints a line that arrived by itself (a log line, a reload), and
    /// the prompt again if it was showing.
    pub(super) fn line(&self, stdout: bool, line: &str) {
        let prompt = self.tty && AT_PROMPT.load(Ordering::Relaxed);
        let cr = if prompt { "\r" } else { "" };
        if stdout {
            out!("{cr}{line}");
        } else {
            err!("{cr}{line}");
        }
        if prompt {
            out_raw!("> ");
            let _ = std::io::stdout().flush();
        }
    }

    /// Shows a notification from the host: a log line (debug ones only
    /// when verbose; a reload on stdout when interactive), a `message`, or
    /// anything else as it came.
    pub(super) fn notification(&self, method: &str, params: &Value) {
        let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        match method {
            "log" => {
                let level = params
                    .get("level")
                    .and_then(Value::as_str)
                    .unwrap_or("info");
                let message = params.get("message").map(text).unwrap_or_default();
                if matches!(level, "debug" | "trace" | "io") && !self.verbose {
                    return;
                }
                if self.interactive && message.contains("] reloaded (") {
                    return self.line(true, &format!("* {message}"));
                }
                self.line(false, &format!("[{}] {message}", level.to_uppercase()));
                if self.interactive && message.contains("] manifest changed: ") {
                    self.line(
                        true,
                        "* in the dev node, type reregister to register the new manifest",
                    );
                }
            }
            "message" => self.line(
                false,
                &format!(
                    "[message] {}",
                    params.get("message").map(text).unwrap_or_default()
                ),
            ),
            other => self.line(false, &format!("[{other}] {params}")),
        }
    }
}

/// What the manifest offers, compactly: methods, options, and hooks and
/// subscriptions (which the dev node never exercises).
pub(super) fn summary(name: &str, manifest: &Value) -> String {
    let list = |key: &str| -> Vec<&Value> {
        manifest
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|v| {
                let n = v.get("name").and_then(Value::as_str).unwrap_or("");
                !n.starts_with(HOST_PREFIX)
            })
            .collect()
    };
    let field = |v: &Value, k: &str| -> String {
        match v.get(k) {
            Some(Value::String(s)) => s.lines().next().unwrap_or("").to_string(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        }
    };
    let methods = list("rpcmethods");
    let options = list("options");
    let mut out = format!(
        "{name}: {} method{}, {} option{}\n",
        methods.len(),
        if methods.len() == 1 { "" } else { "s" },
        options.len(),
        if options.len() == 1 { "" } else { "s" },
    );
    let rows: Vec<(String, String)> = methods
        .iter()
        .map(|m| {
            let head = format!("{} {}", field(m, "name"), field(m, "usage"));
            (head.trim_end().to_string(), field(m, "description"))
        })
        .collect();
    table(&mut out, &rows);
    if !options.is_empty() {
        out.push_str("options (--opt NAME=VALUE):\n");
        let rows: Vec<(String, String)> = options
            .iter()
            .map(|o| {
                let mut head = format!("{} ({}", field(o, "name"), field(o, "type"));
                if o.get("multi") == Some(&Value::Bool(true)) {
                    head.push_str(", multi");
                }
                if let Some(d) = o.get("default") {
                    head.push_str(&format!(", default {d}"));
                }
                head.push(')');
                (head, field(o, "description"))
            })
            .collect();
        table(&mut out, &rows);
    }
    let names = |key: &str| -> Vec<String> {
        manifest
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                other => other.get("name").and_then(Value::as_str).map(str::to_owned),
            })
            .filter(|s| s != "shutdown")
            .collect()
    };
    for (key, what) in [("hooks", "hooks"), ("subscriptions", "subscriptions")] {
        let n = names(key);
        if !n.is_empty() {
            out.push_str(&format!(
                "{what} (the dev node never sends them): {}\n",
                n.join(", ")
            ));
        }
    }
    out
}

/// Rows of `head  description`, the heads padded to one width.
fn table(out: &mut String, rows: &[(String, String)]) {
    let width = rows
        .iter()
        .map(|(h, _)| h.chars().count())
        .max()
        .unwrap_or(0);
    for (head, desc) in rows {
        let line = format!("  {head:<width$}  {desc}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// A value as indented JSON, for a person to read.
pub(super) fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// An error object as one or more lines: `error CODE: message`, then its
/// data, if any.
pub(super) fn error_text(e: &Value) -> String {
    let code = e.get("code").map_or_else(|| "?".into(), Value::to_string);
    let message = match e.get("message") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => e.to_string(),
    };
    let mut s = format!("error {code}: {message}");
    if let Some(data) = e.get("data") {
        s.push_str(&format!("\n{}", pretty(data)));
    }
    s
}
