//! The protocol crate's facts against lightningd's own source, so that the
//! hook and topic lists the host, the guest SDK and the stand-in share
//! cannot drift from lightningd's without a test saying so.
//!
//! The source is read with `git` from `LIGHTNING_SRC` (a clone of
//! ElementsProject/lightning, bare or not), or else from the mirror beside
//! the checkout (`../.mirror/ElementsProject+lightning/repo`), at tag
//! [`TAG`]. A machine without it (CI reaches no GitHub) cannot run them:
//! they are `#[ignore]`d, and `.ci/run` runs them with `--ignored` where
//! the source is there. Run by hand without one, they say they skipped.

use cln_autoreload_tests::{lightning_src, skip};
use cln_protocol::{hooks, Filter, NATIVE_TOPICS};
use std::collections::BTreeSet;
use std::process::Command;

/// The lightningd version whose facts the protocol crate states.
const TAG: &str = "v26.06";

/// `git grep -n PATTERN TAG -- lightningd`'s lines, `file:line:text` with
/// the `TAG:` and `lightningd/` prefixes removed; `None` (after a skip
/// note) when there is no source to read.
fn grep(pattern: &str) -> Option<Vec<(String, String)>> {
    let src = lightning_src()?;
    let out = match Command::new("git")
        .arg("-C")
        .arg(&src)
        .args(["grep", "-n", pattern, TAG, "--", "lightningd"])
        .output()
    {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            skip(format!(
                "git grep in {} at {TAG} failed: {}",
                src.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            return None;
        }
        Err(e) => {
            skip(format!("cannot run git: {e}"));
            return None;
        }
    };
    let prefix = format!("{TAG}:lightningd/");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.strip_prefix(&prefix)?;
            // file:line:text; the text may hold colons itself.
            let mut parts = l.splitn(3, ':');
            let (file, line, text) = (parts.next()?, parts.next()?, parts.next()?);
            Some((format!("{file}:{line}"), text.trim().to_owned()))
        })
        .collect();
    Some(lines)
}

/// The word in `text` between `open` and the next `,` or `)`.
fn arg<'a>(text: &'a str, open: &str) -> Option<&'a str> {
    let rest = &text[text.find(open)? + open.len()..];
    Some(rest[..rest.find([',', ')'])?].trim())
}

#[test]
#[ignore = "reads lightningd's source: set LIGHTNING_SRC (or fetch it beside the project), then run with --ignored"]
fn hooks_are_lightningds() {
    // Every REGISTER_PLUGIN_HOOK{,_STRFILTER,_INTFILTER}(name, ...) site;
    // the macros' own definitions (plugin_hook.h) are not hooks.
    let Some(sites) = grep("REGISTER_PLUGIN_HOOK") else {
        return;
    };
    let mut found: Vec<(String, Filter, String)> = vec![];
    for (at, text) in &sites {
        if text.starts_with("#define") || at.starts_with("plugin_hook.h:") {
            continue;
        }
        let (macro_, filter) = if text.starts_with("REGISTER_PLUGIN_HOOK_STRFILTER(") {
            ("REGISTER_PLUGIN_HOOK_STRFILTER(", Filter::Strings)
        } else if text.starts_with("REGISTER_PLUGIN_HOOK_INTFILTER(") {
            ("REGISTER_PLUGIN_HOOK_INTFILTER(", Filter::Integers)
        } else if text.starts_with("REGISTER_PLUGIN_HOOK(") {
            ("REGISTER_PLUGIN_HOOK(", Filter::None)
        } else {
            continue;
        };
        let name = arg(text, macro_).expect("a hook name after the macro");
        found.push((name.to_owned(), filter, at.clone()));
    }
    // db_write is registered by hand in plugin_hook.c:
    // `static struct plugin_hook db_write_hook = {"db_write", NULL, NULL};`
    let Some(by_hand) = grep("static struct plugin_hook [a-z_]* = {") else {
        return;
    };
    for (at, text) in &by_hand {
        let name = text
            .split('"')
            .nth(1)
            .expect("a quoted hook name in the struct");
        found.push((name.to_owned(), Filter::None, at.clone()));
    }
    let ours: BTreeSet<(String, Filter, String)> = hooks::HOOKS
        .iter()
        .map(|h| (h.name.to_owned(), h.filter, h.registered_in.to_owned()))
        .collect();
    let theirs: BTreeSet<(String, Filter, String)> = found.into_iter().collect();
    assert_eq!(
        ours.difference(&theirs).collect::<Vec<_>>(),
        Vec::<&(String, Filter, String)>::new(),
        "in cln_protocol::HOOKS but not so in lightningd {TAG} (name, filters, registered at)"
    );
    assert_eq!(
        theirs.difference(&ours).collect::<Vec<_>>(),
        Vec::<&(String, Filter, String)>::new(),
        "in lightningd {TAG} but not so in cln_protocol::HOOKS (name, filters, registered at)"
    );
}

#[test]
#[ignore = "reads lightningd's source: set LIGHTNING_SRC (or fetch it beside the project), then run with --ignored"]
fn native_topics_are_lightningds() {
    let Some(sites) = grep("^REGISTER_NOTIFICATION(") else {
        return;
    };
    let theirs: BTreeSet<&str> = sites
        .iter()
        .filter_map(|(_, text)| arg(text, "REGISTER_NOTIFICATION("))
        .collect();
    let ours: BTreeSet<&str> = NATIVE_TOPICS.iter().copied().collect();
    assert_eq!(ours.len(), NATIVE_TOPICS.len(), "a topic listed twice");
    assert_eq!(
        ours, theirs,
        "cln_protocol::NATIVE_TOPICS against lightningd {TAG}"
    );
}
