//! The invariants the fuzz targets in `fuzz/` check, kept here so that the
//! fuzz targets (built by cargo-fuzz with `--cfg fuzzing`) and a stable unit
//! test, which replays the committed corpus, run the same code.
//!
//! Each entry point takes raw fuzz input and panics when an invariant does
//! not hold. The structured targets read their choices from the input with
//! [`Input`], so every byte string is a valid (and finite) test case and
//! libFuzzer's mutations of it stay meaningful.

use crate::framing::{Frame, Framer, Kind};
use crate::init::CachedInit;
use crate::manifest::{self, Diff, Manifest, HOST_PREFIX};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Choices read from fuzz input; once it is used up every choice is 0.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        let v = if n > 256 {
            usize::from(self.byte()) << 8 | usize::from(self.byte())
        } else {
            usize::from(self.byte())
        };
        v % n
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<T: Clone>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())].clone()
    }

    /// Up to `max` raw bytes.
    fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = self.below(max + 1).min(self.data.len());
        let (taken, rest) = self.data.split_at(n);
        self.data = rest;
        taken
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// A short string: usually from `vocabulary`, sometimes made up from
    /// the input (any UTF-8, so quotes, braces and escapes turn up).
    fn name(&mut self, vocabulary: &[&str]) -> String {
        if self.chance(4) {
            String::from_utf8_lossy(self.bytes(12)).into_owned()
        } else {
            self.pick(vocabulary).to_owned()
        }
    }

    /// Any JSON value, nested at most `depth` deep.
    fn value(&mut self, depth: u32) -> Value {
        const WORDS: &[&str] = &["", "x", "{", "}\"]", "\\", "\n", "é", "autoreload-x"];
        match self.below(if depth == 0 { 6 } else { 8 }) {
            0 => Value::Null,
            1 => Value::Bool(self.chance(2)),
            2 => json!(self.byte() as i64 - 64),
            3 => json!(f64::from(self.byte()) / 4.0),
            4 => json!(i64::MIN + i64::from(self.byte())),
            5 => Value::String(self.name(WORDS)),
            6 => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
            _ => Value::Object(
                (0..self.below(4))
                    .map(|_| (self.name(WORDS), self.value(depth - 1)))
                    .collect(),
            ),
        }
    }
}

/// Feeds `stream` to a framer in chunks of the given sizes (cycled; the
/// whole stream at once if there are none), taking every frame after each
/// push, then what `finish` returns.
fn frames_of(stream: &[u8], sizes: &[usize]) -> Vec<Frame> {
    fn drain(f: &mut Framer, frames: &mut Vec<Frame>) {
        loop {
            let before = f.pending();
            let Some(frame) = f.next_frame() else { break };
            // Every frame consumes bytes: this is what rules out a hang.
            assert!(
                f.pending() < before,
                "a frame that consumed nothing: {frame:?}"
            );
            frames.push(frame);
        }
    }
    let mut f = Framer::new();
    let mut frames = vec![];
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let n = match sizes {
            [] => rest.len(),
            _ => sizes[i % sizes.len()].clamp(1, rest.len()),
        };
        i += 1;
        let (chunk, tail) = rest.split_at(n);
        f.push(chunk);
        rest = tail;
        drain(&mut f, &mut frames);
    }
    frames.extend(f.finish());
    assert_eq!(f.pending(), 0, "finish left bytes behind");
    assert!(f.next_frame().is_none(), "a frame after finish");
    frames
}

/// The frames, comparably: each message's bytes, and between them the
/// garbage bytes run together, less whitespace. How a run of garbage is
/// cut into frames depends on the chunks it arrived in (the framer reports
/// what it has rather than wait for a line's end; whitespace at the start
/// of a cut is skipped), and does not matter.
fn shape(frames: &[Frame]) -> Vec<(bool, Vec<u8>)> {
    let mut out: Vec<(bool, Vec<u8>)> = vec![];
    for f in frames {
        match (f, out.last_mut()) {
            (Frame::Message(m), _) => out.push((true, m.raw.to_vec())),
            (Frame::Garbage { bytes, .. }, Some((false, run))) => run.extend_from_slice(bytes),
            (Frame::Garbage { bytes, .. }, _) => out.push((false, bytes.to_vec())),
        }
        if let Some((false, run)) = out.last_mut() {
            run.retain(|b| !b.is_ascii_whitespace());
        }
    }
    out
}

/// Checks what holds for any stream: the frames are the stream's bytes, in
/// order, each exactly once, with only whitespace between them; every
/// message is a JSON-RPC object whose envelope matches its kind; nothing
/// is empty.
fn check_frames(stream: &[u8], frames: &[Frame]) {
    let mut at = 0;
    for frame in frames {
        let bytes = match frame {
            Frame::Message(m) => &m.raw[..],
            Frame::Garbage { bytes, .. } => &bytes[..],
        };
        assert!(!bytes.is_empty(), "an empty frame: {frame:?}");
        while at < stream.len() && !stream[at..].starts_with(bytes) {
            assert!(
                stream[at].is_ascii_whitespace(),
                "byte {at} of the stream is in no frame: {frame:?}"
            );
            at += 1;
        }
        assert!(
            stream[at..].starts_with(bytes),
            "a frame that is not the next bytes of the stream: {frame:?}"
        );
        at += bytes.len();
        if let Frame::Message(m) = frame {
            // Raw values: a number too big for serde_json's Value (an id
            // of 1e999) is still JSON.
            let v: HashMap<String, Box<RawValue>> = serde_json::from_slice(&m.raw)
                .unwrap_or_else(|e| panic!("a message that is not a JSON object ({e}): {m:?}"));
            assert!(v.contains_key("jsonrpc"), "{m:?}");
            let id = v.get("id").map(|r| r.get()).filter(|&id| id != "null");
            let method: Option<String> = v.get("method").map(|r| {
                serde_json::from_str(r.get())
                    .unwrap_or_else(|e| panic!("a method that is not a string ({e}): {m:?}"))
            });
            match &m.kind {
                Kind::Request {
                    id: rid,
                    method: rm,
                } => {
                    assert_eq!(id, Some(rid.as_json()), "{m:?}");
                    assert_eq!(method.as_ref(), Some(rm), "{m:?}");
                }
                Kind::Notification { method: nm } => {
                    assert!(id.is_none(), "{m:?}");
                    assert_eq!(method.as_ref(), Some(nm), "{m:?}");
                }
                Kind::Response { id: rid } => {
                    assert_eq!(id, Some(rid.as_json()), "{m:?}");
                    assert!(method.is_none(), "{m:?}");
                }
            }
        }
    }
    assert!(
        stream[at..].iter().all(u8::is_ascii_whitespace),
        "the stream's tail is in no frame"
    );
}

/// A valid JSON-RPC message, as some JSON writer might print it.
fn message(inp: &mut Input) -> Vec<u8> {
    const METHODS: &[&str] = &["getinfo", "log", "init", "x{\"}", "autoreload-status"];
    let mut o = Map::new();
    o.insert("jsonrpc".into(), json!("2.0"));
    let id = match inp.below(4) {
        0 => Value::String(inp.name(&["cln:init#1", "cli:x#2/cln:y#3", "}{", "\\\""])),
        1 => json!(inp.byte()),
        2 => Value::Null,
        _ => inp.value(1),
    };
    let method = inp.chance(3).then(|| inp.name(METHODS));
    match (&id, method) {
        // With neither, it is not a message; make it a notification.
        (Value::Null, None) => {
            o.insert("method".into(), json!("log"));
        }
        (_, Some(m)) => {
            o.insert("id".into(), id);
            o.insert("method".into(), Value::String(m));
        }
        (_, None) => {
            o.insert("id".into(), id);
        }
    }
    let body = if o.contains_key("method") {
        "params"
    } else {
        "result"
    };
    o.insert(body.into(), inp.value(3));
    let v = Value::Object(o);
    let text = if inp.chance(2) {
        serde_json::to_vec_pretty(&v)
    } else {
        serde_json::to_vec(&v)
    };
    text.unwrap_or_default()
}

/// The framing target: `data` is either a raw stream (first byte even) or,
/// read as choices, a stream of valid messages with optional stray output
/// before them. Either is fed whole and in chunks of sizes also read from
/// `data`.
pub fn framing(data: &[u8]) {
    let mut inp = Input::new(data);
    let structured = inp.byte() & 1 == 1;
    let sizes: Vec<usize> = (0..inp.below(8))
        .map(|_| usize::from(inp.byte()) + 1)
        .collect();
    let mut stream = vec![];
    let mut expected = vec![];
    if structured {
        // A stray print, as a plugin's debugging output: one line with no
        // `{` (a `{` may start a message, so it cannot be told from one).
        if inp.chance(2) {
            let line: Vec<u8> = inp
                .bytes(20)
                .iter()
                .copied()
                .filter(|b| !matches!(b, b'{' | b'\n'))
                .collect();
            stream.extend_from_slice(&line);
            stream.push(b'\n');
        }
        for _ in 0..inp.below(5) + 1 {
            let m = message(&mut inp);
            stream.extend_from_slice(&m);
            expected.push(m);
            stream.extend_from_slice(inp.pick(&[&b""[..], b" ", b"\n\n", b"\r\n\t "]));
        }
    } else {
        stream.extend_from_slice(inp.rest());
    }
    let whole = frames_of(&stream, &[]);
    check_frames(&stream, &whole);
    let chunked = frames_of(&stream, &sizes);
    check_frames(&stream, &chunked);
    assert_eq!(
        shape(&whole),
        shape(&chunked),
        "chunks of {sizes:?} frame the stream differently"
    );
    if structured {
        let got: Vec<&[u8]> = whole
            .iter()
            .filter_map(|f| match f {
                Frame::Message(m) => Some(&m.raw[..]),
                Frame::Garbage { .. } => None,
            })
            .collect();
        let want: Vec<&[u8]> = expected.iter().map(Vec::as_slice).collect();
        assert_eq!(got, want, "the messages did not come through intact");
    }
}

/// A manifest entry name: ordinary, the host's own, empty, or made up.
const NAMES: &[&str] = &[
    "hello",
    "a",
    "b",
    "",
    "autoreload-status",
    "autoreload-plugin",
    "autoreload-",
    "Autoreload-x",
];

fn option_decl(inp: &mut Input) -> Value {
    let mut o = Map::new();
    if !inp.chance(8) {
        o.insert("name".into(), Value::String(inp.name(NAMES)));
    }
    if !inp.chance(8) {
        let types = ["string", "int", "bool", "flag", "string-conceal", "float"];
        let ty = if inp.chance(8) {
            inp.value(0)
        } else {
            Value::String(inp.pick(&types).into())
        };
        o.insert("type".into(), ty);
    }
    if !inp.chance(8) {
        let d = if inp.chance(8) {
            inp.value(0)
        } else {
            json!("d")
        };
        o.insert("description".into(), d);
    }
    if inp.chance(2) {
        o.insert("default".into(), inp.value(1));
    }
    for key in ["multi", "dynamic", "deprecated"] {
        if inp.chance(4) {
            o.insert(key.into(), inp.value(0));
        }
    }
    Value::Object(o)
}

fn method_decl(inp: &mut Input) -> Value {
    let mut o = Map::new();
    if !inp.chance(8) {
        o.insert("name".into(), Value::String(inp.name(NAMES)));
    }
    if !inp.chance(8) {
        let u = if inp.chance(8) {
            inp.value(0)
        } else {
            json!("[x]")
        };
        o.insert("usage".into(), u);
    }
    if inp.chance(2) {
        o.insert("description".into(), inp.value(0));
    }
    Value::Object(o)
}

fn hook_decl(inp: &mut Input) -> Value {
    let mut names: Vec<&str> = cln_protocol::hooks::names().collect();
    names.extend(["no_such_hook", "", "Peer_connected"]);
    match inp.below(6) {
        0 => Value::String(inp.name(&names)),
        1 => inp.value(1),
        _ => {
            let mut o = Map::new();
            if !inp.chance(8) {
                o.insert("name".into(), Value::String(inp.name(&names)));
            }
            if inp.chance(2) {
                let filters = (0..inp.below(3))
                    .map(|_| {
                        if inp.chance(2) {
                            json!(inp.byte())
                        } else {
                            Value::String(inp.name(&["getinfo", "pay"]))
                        }
                    })
                    .collect();
                o.insert("filters".into(), Value::Array(filters));
            }
            for key in ["before", "after"] {
                if inp.chance(4) {
                    o.insert(key.into(), inp.value(1));
                }
            }
            Value::Object(o)
        }
    }
}

/// Makes one entry of a manifest list from fuzz input.
type Make = fn(&mut Input) -> Value;

/// An array of `make`'s entries, sometimes missing or not an array.
fn list(inp: &mut Input, make: Make) -> Option<Value> {
    match inp.below(8) {
        0 => None,
        1 => Some(inp.value(1)),
        _ => Some(Value::Array((0..inp.below(5)).map(|_| make(inp)).collect())),
    }
}

/// Something that usually looks like a `getmanifest` result.
fn manifest_result(inp: &mut Input) -> Value {
    if inp.chance(32) {
        return inp.value(2);
    }
    let mut o = Map::new();
    let lists: [(&str, Make); 3] = [
        ("options", option_decl),
        ("rpcmethods", method_decl),
        ("hooks", hook_decl),
    ];
    for (key, make) in lists {
        if let Some(v) = list(inp, make) {
            o.insert(key.into(), v);
        }
    }
    if let Some(v) = list(inp, |inp| {
        Value::String(inp.name(&["connect", "shutdown", "*", "custom"]))
    }) {
        o.insert("subscriptions".into(), v);
    }
    if let Some(v) = list(inp, |inp| match inp.below(4) {
        0 => inp.value(1),
        _ => json!({"method": inp.name(&["custom", "other"])}),
    }) {
        o.insert("notifications".into(), v);
    }
    let scalars = [
        "dynamic",
        "nonnumericids",
        "featurebits",
        "cancheck",
        "custommessages",
        "disable",
    ];
    for key in scalars {
        if inp.chance(2) {
            let v = match (key, inp.below(3)) {
                ("featurebits", 0) => json!({"node": "0100"}),
                ("featurebits", 1) => json!({}),
                (_, 0) => Value::Bool(true),
                (_, 1) => Value::Bool(false),
                _ => inp.value(1),
            };
            o.insert(key.into(), v);
        }
    }
    Value::Object(o)
}

/// Names of the entries of `list`, checking each with `valid`.
fn names_of<'v>(out: &'v Value, list: &str) -> Vec<&'v str> {
    out[list]
        .as_array()
        .unwrap_or_else(|| panic!("\"{list}\" is not an array: {out}"))
        .iter()
        .map(|e| match e {
            Value::String(s) => s.as_str(),
            other => other["name"]
                .as_str()
                .unwrap_or_else(|| panic!("{list} entry without a name: {other}")),
        })
        .collect()
}

fn assert_unique(names: &[&str], what: &str, out: &Value) {
    let mut sorted = names.to_vec();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        panic!("{what} '{}' registered twice: {out}", w[0]);
    }
}

/// Checks what the host registers: nothing lightningd v26.06 kills a
/// plugin for (see `shared/cln-v26.06/README.md`), and the host's own
/// options and methods exactly once each.
fn check_registrable(out: &Value) {
    let options = names_of(out, "options");
    let methods = names_of(out, "rpcmethods");
    assert_unique(&options, "option", out);
    assert_unique(&methods, "method", out);
    for (own, names) in [
        (manifest::host_options(), &options),
        (manifest::host_methods(), &methods),
    ] {
        for decl in own {
            let name = decl["name"].as_str().unwrap_or_default();
            assert!(
                names.contains(&name),
                "the host's '{name}' is missing: {out}"
            );
            let found = out["options"]
                .as_array()
                .into_iter()
                .chain(out["rpcmethods"].as_array())
                .flatten()
                .find(|d| d["name"] == name);
            assert_eq!(found, Some(&decl), "the host's '{name}' was changed");
        }
    }
    for o in out["options"].as_array().into_iter().flatten() {
        let ty = o["type"].as_str().unwrap_or_default();
        assert!(
            cln_protocol::OptionType::from_name(ty).is_some(),
            "option of type {ty}: {o}"
        );
        assert!(
            o["description"].is_string(),
            "option without description: {o}"
        );
    }
    for m in out["rpcmethods"].as_array().into_iter().flatten() {
        assert!(m["usage"].is_string(), "method without usage: {m}");
    }
    if out.get("hooks").is_some() {
        let hooks = names_of(out, "hooks");
        assert_unique(&hooks, "hook", out);
        for (name, decl) in hooks
            .iter()
            .zip(out["hooks"].as_array().into_iter().flatten())
        {
            assert!(cln_protocol::hooks::is_known(name), "unknown hook '{name}'");
            if decl.get("filters").is_some() {
                assert!(
                    cln_protocol::hooks::find(name)
                        .is_some_and(|h| h.filter != cln_protocol::Filter::None),
                    "filters on hook '{name}'"
                );
            }
        }
    }
    if let Some(v) = out.get("dynamic") {
        assert!(v.is_boolean(), "dynamic: {v}");
    }
    if let Some(v) = out.get("nonnumericids") {
        assert_eq!(v, &Value::Bool(true), "nonnumericids: {v}");
    }
    let featurebits = out
        .get("featurebits")
        .is_some_and(|f| f.as_object().is_some_and(|o| !o.is_empty()));
    assert!(
        !(featurebits && out.get("dynamic") == Some(&Value::Bool(true))),
        "featurebits in a dynamic plugin's manifest: {out}"
    );
    assert!(out.get("disable").is_none(), "the host disabled: {out}");
    let subs = out["subscriptions"].as_array();
    assert!(
        subs.is_some_and(|s| s.contains(&json!("shutdown")) || s.contains(&json!("*"))),
        "the host does not see shutdown: {out}"
    );
}

/// The manifest target: up to four plugins' `getmanifest` results, checked,
/// accepted unless they clash with an earlier one (as the host does at
/// start-up), then merged with the host's own entries.
pub fn manifest(data: &[u8]) {
    let mut inp = Input::new(data);
    let mut accepted: Vec<Manifest> = vec![];
    for _ in 0..inp.below(4) + 1 {
        let result = manifest_result(&mut inp);
        let Ok((m, _problems)) = Manifest::from_result(&result) else {
            assert!(!result.is_object(), "an object refused: {result}");
            continue;
        };
        // What the checks let through passes them again untouched.
        let again = Manifest::from_result(&Value::Object(m.value.clone()));
        let (m2, problems) = again.unwrap_or_else(|e| panic!("a checked manifest refused: {e}"));
        assert!(problems.is_empty(), "{problems:?} in a checked manifest");
        assert_eq!(m2, m, "checking a checked manifest changed it");
        assert!(Diff::between(&m, &m).is_empty(), "diff(a, a) is not empty");
        check_registrable(&manifest::merged(&[&m]));
        // Routing a hook call by the registration's filters never panics,
        // whatever the call's params.
        let payload = String::from_utf8_lossy(inp.bytes(6)).into_owned();
        let call = match inp.below(3) {
            0 => json!({"rpc_command": {"method": inp.name(&["getinfo", "pay"])}}),
            1 => json!({ "payload": payload }),
            _ => inp.value(2),
        };
        for hook in ["rpc_command", "custommsg", "peer_connected"] {
            manifest::hook_wants(&m, hook, Some(&call));
        }
        if accepted
            .iter()
            .all(|a| manifest::conflicts(a, &m).is_empty())
        {
            accepted.push(m);
        }
    }
    let refs: Vec<&Manifest> = accepted.iter().collect();
    check_registrable(&manifest::merged(&refs));
    if let [a, b, ..] = refs.as_slice() {
        let d = Diff::between(a, b);
        let back = Diff::between(b, a);
        assert_eq!(d.added, back.removed, "diff(a, b) and diff(b, a) disagree");
        assert_eq!(
            d.changed, back.changed,
            "diff(a, b) and diff(b, a) disagree"
        );
    }
}

/// The init target: lightningd's `init` params with arbitrary options (the
/// host's among them), and a plugin manifest declaring some of them.
pub fn init(data: &[u8]) {
    const KEYS: &[&str] = &[
        "trace-str",
        "trace-int",
        "autoreload-plugin",
        "autoreload-grace-ms",
        "autoreload-",
        "autoreload-unknown",
        "autoreloadx",
        "",
    ];
    let mut inp = Input::new(data);
    let mut options = Map::new();
    for _ in 0..inp.below(6) {
        options.insert(inp.name(KEYS), inp.value(1));
    }
    let mut params = Map::new();
    if !inp.chance(8) {
        let opts = if inp.chance(8) {
            inp.value(1)
        } else {
            Value::Object(options.clone())
        };
        params.insert("options".into(), opts);
    }
    if !inp.chance(8) {
        params.insert(
            "configuration".into(),
            json!({"lightning-dir": "/l", "rpc-file": "lightning-rpc", "startup": inp.chance(2)}),
        );
    }
    if inp.chance(4) {
        params.insert(inp.name(KEYS), inp.value(1));
    }
    let params = if inp.chance(16) {
        inp.value(1)
    } else {
        Value::Object(params)
    };
    let given: Map<String, Value> = match params.get("options") {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    };
    // The plugin declares every option lightningd sent (the host's, and
    // names lightningd refuses, are dropped by the checks), and some others.
    let mut decls: Vec<Value> = given
        .keys()
        .map(|k| json!({"name": k, "type": "string", "description": "d"}))
        .collect();
    for _ in 0..inp.below(3) {
        decls.push(option_decl(&mut inp));
    }
    let result = json!({"options": decls, "rpcmethods": []});
    let Ok((m, _)) = Manifest::from_result(&result) else {
        panic!("a manifest object refused")
    };

    let cached = CachedInit::new(&params);
    let stripped = cached.params_for(Some(&m), &m);
    let out = stripped["options"]
        .as_object()
        .unwrap_or_else(|| panic!("stripped init without options: {stripped}"));
    for (k, v) in &given {
        if k.starts_with(HOST_PREFIX) {
            assert!(!out.contains_key(k), "host option '{k}' kept: {stripped}");
            assert_eq!(cached.host_option(k), Some(v), "host option '{k}' lost");
        } else if m.option(k).is_some() {
            assert_eq!(out.get(k), Some(v), "option '{k}' not kept as it was");
        } else {
            // The manifest checks dropped its declaration (a name
            // lightningd refuses): lightningd never sends it.
            assert!(!out.contains_key(k), "option '{k}' passed on undeclared");
        }
    }
    for k in out.keys() {
        assert!(m.option(k).is_some(), "undeclared option '{k}' passed on");
    }
    if let Value::Object(p) = &params {
        let mut rest = p.clone();
        rest.remove("options");
        let mut got = stripped.as_object().cloned().unwrap_or_default();
        got.remove("options");
        assert_eq!(got, rest, "init params besides the options changed");
    }
    let again = CachedInit::new(&stripped).params_for(Some(&m), &m);
    assert_eq!(again, stripped, "stripping twice differs from once");

    // A reloaded version whose options lightningd never saw: each gets
    // lightningd's value if it has one, else its default.
    let fresh = cached.params_for(None, &m);
    for decl in &m.options {
        let got = fresh["options"].get(&decl.name);
        match (given.get(&decl.name), &decl.default) {
            (Some(v), _) => assert_eq!(got, Some(v)),
            (None, Some(_)) if decl.ty != "flag" => {
                assert!(got.is_some(), "option '{}' without its default", decl.name)
            }
            (None, _) => assert!(got.is_none(), "option '{}' made up", decl.name),
        }
    }

    // A value set with setconfig is what the next generation gets.
    if let Some(decl) = m.options.first() {
        let mut c = cached.clone();
        let val = inp.value(0);
        c.set(&decl.ty, &decl.name, &val);
        let p = c.params_for(Some(&m), &m);
        assert!(
            p["options"].get(&decl.name).is_some(),
            "setconfig value lost"
        );
        assert!(
            p["options"]
                .as_object()
                .is_some_and(|o| o.keys().all(|k| !k.starts_with(HOST_PREFIX))),
            "a host option passed on after setconfig"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Runs every file in `fuzz/corpus/<target>/` through `check`.
    fn replay(target: &str, check: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(target);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {} unreadable: {e}", dir.display()));
        let mut n = 0;
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let data = std::fs::read(&path).expect("corpus file");
            let run = std::panic::catch_unwind(|| check(&data));
            assert!(run.is_ok(), "{} fails", path.display());
            n += 1;
        }
        assert!(n > 0, "corpus {} is empty", dir.display());
    }

    #[test]
    fn framing_corpus_holds() {
        replay("framing", framing);
    }

    #[test]
    fn manifest_corpus_holds() {
        replay("manifest", manifest);
    }

    #[test]
    fn init_corpus_holds() {
        replay("init", init);
    }

    /// A few thousand pseudo-random inputs per target: a smoke test of the
    /// invariants that needs no fuzzer (xorshift, fixed seed, reproducible).
    #[test]
    fn pseudo_random_inputs_hold() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for i in 0..3000 {
            let len = (next() % 200) as usize;
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let f: fn(&[u8]) = [framing, manifest, init][i % 3];
            f(&data);
        }
    }
}
