//! JSON-RPC message shapes and the byte-splicing helpers lightningd uses
//! (it forwards raw bytes and only swaps the `id` token).

use serde::Deserialize;
use serde_json::value::RawValue;
use std::ops::Range;

/// Any message on either side: request, response or notification.
/// Every member is kept raw so it can be passed on byte for byte.
#[derive(Deserialize)]
pub struct Msg<'a> {
    #[serde(borrow, default)]
    pub jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub method: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub error: Option<&'a RawValue>,
}

impl<'a> Msg<'a> {
    pub fn parse(buf: &'a [u8]) -> Option<Msg<'a>> {
        serde_json::from_slice(buf).ok()
    }
}

/// Byte range of `raw` inside `buf` (raw must have been parsed from buf).
pub fn span_of(buf: &[u8], raw: &RawValue) -> Option<Range<usize>> {
    let start = (raw.get().as_ptr() as usize).checked_sub(buf.as_ptr() as usize)?;
    let end = start.checked_add(raw.get().len())?;
    if end <= buf.len() {
        Some(start..end)
    } else {
        None
    }
}

/// `buf` with the bytes in `span` replaced by `with`.
pub fn splice(buf: &[u8], span: &Range<usize>, with: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(buf.len() + with.len() + 2);
    out.extend_from_slice(buf.get(..span.start).unwrap_or_default());
    out.extend_from_slice(with.as_bytes());
    out.extend_from_slice(buf.get(span.end..).unwrap_or_default());
    out
}

/// The content of a JSON string literal for `s`, without the quotes.
pub fn escape_inner(s: &str) -> String {
    let q = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    q.get(1..q.len().saturating_sub(1))
        .unwrap_or_default()
        .to_string()
}

/// JSON string literal for `s`.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", escape_inner(s))
}

/// The text of a client's id that prefixes lightningd's own ids
/// (jsonrpc.c jsonrpc_request_start_): the id token with a string's quotes
/// stripped; if that would need JSON escaping (ccan json_escape_needed:
/// a control character, DEL, `"` or `\`), `weird-id` instead.
pub fn id_text(id_raw: &str) -> String {
    let inner = if id_raw.len() > 1 && id_raw.starts_with('"') && id_raw.ends_with('"') {
        &id_raw[1..id_raw.len() - 1]
    } else {
        id_raw
    };
    if inner
        .bytes()
        .any(|b| b < b' ' || b == 127 || b == b'"' || b == b'\\')
    {
        "weird-id".to_string()
    } else {
        inner.to_string()
    }
}

/// A lightningd request id, as a JSON string literal:
/// `"<prefix>/cln:<method>#<n>"` or `"cln:<method>#<n>"` (jsonrpc.c
/// jsonrpc_request_start_; `n` from one counter for all requests to all
/// plugins, `next_request_id`).
pub fn make_id(prefix: Option<&str>, method: &str, n: u64) -> String {
    let m = escape_inner(method);
    match prefix {
        Some(p) => format!("\"{p}/cln:{m}#{n}\""),
        None => format!("\"cln:{m}#{n}\""),
    }
}

/// The members of a JSON object in the order written, each value as its
/// raw bytes (duplicates kept, as jsmn keeps them).
pub fn members(buf: &[u8]) -> Option<Vec<(String, &RawValue)>> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<(String, &'de RawValue)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(kv) = map.next_entry::<String, &'de RawValue>()? {
                out.push(kv);
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(buf);
    serde::Deserializer::deserialize_map(&mut de, V).ok()
}

/// The `rpc_command` hook's payload for a client request, as
/// jsonrpc.c rpc_command_hook_serialize writes it: `{"rpc_command":{...}}`
/// with each top-level member of the request re-emitted compactly
/// (`"key":` then the value's raw bytes, json_add_tok), so the spacing
/// between members goes and the spacing inside values stays (the trace's
/// `{"jsonrpc":"2.0","method":"getinfo","id":"cli:getinfo#9037","params":[ ]}`
/// for lightning-cli's `{ "jsonrpc" : "2.0", ... "params" :[ ] }`).
pub fn rpc_command_payload(request: &[u8]) -> String {
    let parts: Vec<String> = members(request)
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{}:{}", quote(k), v.get()))
        .collect();
    format!("{{\"rpc_command\":{{{}}}}}", parts.join(","))
}

/// A JSON string's value, if `raw` is a string.
pub fn raw_str(raw: &RawValue) -> Option<String> {
    serde_json::from_str::<String>(raw.get()).ok()
}

/// Frame bytes the way lightningd writes them: the message, then "\n\n"
/// (jsonrpc.c jsonrpc_request_end / jsonrpc_notification_end_noparams
/// "We guarantee to have \n\n at end of each response"; the passthrough
/// copy gets json_stream_double_cr, plugin.c plugin_rpcmethod_dispatch).
pub fn framed(mut v: Vec<u8>) -> Vec<u8> {
    v.extend_from_slice(b"\n\n");
    v
}

pub fn ok_response(id_raw: &str, result: &str) -> Vec<u8> {
    format!("{{\"jsonrpc\":\"2.0\",\"id\":{id_raw},\"result\":{result}}}\n\n").into_bytes()
}

pub fn error_response_raw(id_raw: &str, error: &str) -> Vec<u8> {
    format!("{{\"jsonrpc\":\"2.0\",\"id\":{id_raw},\"error\":{error}}}\n\n").into_bytes()
}

pub fn error_response(id_raw: &str, code: i64, message: &str) -> Vec<u8> {
    error_response_raw(
        id_raw,
        &format!("{{\"code\":{code},\"message\":{}}}", quote(message)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_id() {
        let buf = br#"{ "jsonrpc" : "2.0", "id" : "cli:x#1", "params" :[ 1] }"#;
        let m = Msg::parse(buf).expect("parses");
        let span = m.id.and_then(|i| span_of(buf, i)).expect("span");
        let id = make_id(Some(&id_text(m.id.map(|i| i.get()).unwrap_or(""))), "x", 62);
        let out = splice(buf, &span, &id);
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{ "jsonrpc" : "2.0", "id" : "cli:x#1/cln:x#62", "params" :[ 1] }"#
        );
        assert_eq!(id_text("17"), "17");
        assert_eq!(id_text(r#""a\"b""#), "weird-id");
        assert_eq!(make_id(None, "getmanifest", 20), "\"cln:getmanifest#20\"");
    }
}
