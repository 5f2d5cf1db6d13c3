//! Reading what the developer types: `--opt` values, `--call` arguments
//! and terminal lines.
//!
//! Owns: turning text into a method and its params (named, positional or
//! JSON) and `--opt` text into names and values. Must not: know the
//! plugin's manifest (typing option values is the handshake's), print, or
//! talk to the host.

use serde_json::{Map, Value};

/// An option given with `--opt`: its name and, unless a flag, its value.
pub(super) type GivenOpt = (String, Option<String>);

/// Parses `--opt` arguments: `NAME=VALUE`, or `NAME` (a flag).
pub(super) fn parse_opts(opts: &[String]) -> Result<Vec<GivenOpt>, String> {
    opts.iter()
        .map(|o| {
            let o = o.trim_start_matches("--");
            let (name, value) = match o.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (o, None),
            };
            if name.is_empty() {
                return Err(format!(
                    "--opt {o}: give NAME=VALUE (or NAME alone for a flag)"
                ));
            }
            Ok((name.to_string(), value))
        })
        .collect()
}

/// A terminal line: `METHOD [ARGS]`, where ARGS are `key=value` pairs,
/// plain values, or a single JSON object or array. `None` for a blank
/// line.
pub fn parse_line(line: &str) -> Result<Option<(String, Value)>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (method, rest) = line
        .split_once(char::is_whitespace)
        .map_or((line, ""), |(m, r)| (m, r.trim()));
    if rest.starts_with(['{', '[']) {
        if let Ok(v @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str(rest) {
            return Ok(Some((method.to_string(), v)));
        }
    }
    let words = split_words(rest)?;
    Ok(Some((method.to_string(), params_from_args(&words)?)))
}

/// Params from separate arguments: a single JSON object or array as is;
/// `key=value` pairs as named params; otherwise positional. A value that
/// parses as JSON is taken as JSON (`1`, `true`, `[1,2]`), else as a
/// string.
pub fn params_from_args(args: &[String]) -> Result<Value, String> {
    if let [one] = args {
        if one.trim_start().starts_with(['{', '[']) {
            // Starting with `{` or `[`, it can only be an object or array.
            return serde_json::from_str(one).map_err(|e| format!("{one}: not JSON ({e})"));
        }
    }
    let value = |s: &str| serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()));
    fn named(a: &str) -> Option<(&str, &str)> {
        a.split_once('=').filter(|(k, _)| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
    }
    let mut by_name = Map::new();
    let mut by_position = vec![];
    for a in args {
        match named(a) {
            Some((k, v)) => {
                by_name.insert(k.to_string(), value(v));
            }
            None => by_position.push(value(a)),
        }
    }
    match (by_name.is_empty(), by_position.is_empty()) {
        (true, false) => Ok(Value::Array(by_position)),
        (false, false) => Err(
            "give either key=value pairs or plain values, not both (or one JSON object or array)"
                .to_string(),
        ),
        _ => Ok(Value::Object(by_name)),
    }
}

/// Splits a line into words as a POSIX shell does, expanding nothing:
/// whitespace separates, single and double quotes group (and are removed),
/// a backslash escapes, and a word starting with `#` begins a comment.
fn split_words(s: &str) -> Result<Vec<String>, String> {
    shlex::split(s).ok_or_else(|| "unterminated quote, or a \\ at the end of the line".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(s: &str) -> (String, Value) {
        parse_line(s).unwrap().unwrap()
    }

    #[test]
    fn terminal_lines() {
        assert_eq!(parse_line("   ").unwrap(), None);
        assert_eq!(line("getinfo"), ("getinfo".into(), json!({})));
        assert_eq!(
            line("hello name=world"),
            ("hello".into(), json!({"name": "world"}))
        );
        assert_eq!(
            line("x a=1 b=true c=[1,2]").1,
            json!({"a": 1, "b": true, "c": [1, 2]})
        );
        assert_eq!(
            line("x 1 two \"three four\"").1,
            json!([1, "two", "three four"])
        );
        assert_eq!(
            line(r#"x {"a": [1, 2], "b": "c d"}"#).1,
            json!({"a": [1, 2], "b": "c d"})
        );
        assert_eq!(line(r#"x [1, "two"]"#).1, json!([1, "two"]));
        assert_eq!(line("x msg='hello world'").1, json!({"msg": "hello world"}));
        assert_eq!(line("x url=a=b").1, json!({"url": "a=b"}));
        assert!(parse_line("x a=1 2").is_err());
        assert!(parse_line("x 'open").is_err());
        assert_eq!(
            line(r#"x "say \"hi\"" a\ b 'c\d'"#).1,
            json!(["say \"hi\"", "a b", "c\\d"])
        );
    }

    #[test]
    fn call_args() {
        let args =
            |a: &[&str]| params_from_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(args(&[]).unwrap(), json!({}));
        assert_eq!(args(&["a=1"]).unwrap(), json!({"a": 1}));
        assert_eq!(args(&[r#"[1,"two"]"#]).unwrap(), json!([1, "two"]));
        assert_eq!(args(&["x", "2"]).unwrap(), json!(["x", 2]));
        assert!(args(&["{nope"]).is_err());
    }
}
