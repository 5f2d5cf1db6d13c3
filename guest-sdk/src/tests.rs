//! The main loop, driven with bytes.

use serde_json::{json, Value};

use crate::options::{ConfigOption, OptionType};
use crate::{param, Builder, Hook, Level, RpcError};

/// Runs `builder` on `input`; the messages it wrote, checking the framing.
fn drive<S>(builder: Builder<S>, input: &str) -> Vec<Value> {
    let out = match builder.run_on(input.as_bytes(), Vec::new()) {
        Ok(out) => out,
        Err(e) => panic!("run_on failed: {e}"),
    };
    let text = String::from_utf8(out).expect("utf-8 output");
    assert!(
        text.is_empty() || text.ends_with("\n\n"),
        "framing: {text:?}"
    );
    text.split("\n\n")
        .filter(|s| !s.is_empty())
        .map(|s| {
            assert!(!s.contains('\n'), "not compact: {s:?}");
            serde_json::from_str(s).expect("JSON message")
        })
        .collect()
}

fn sample() -> Builder<Vec<String>> {
    Builder::with_state(Vec::new())
        .option(ConfigOption::string("t-str", "dflt", "a string"))
        .option(ConfigOption::int("t-dyn", 1, "an int").dynamic())
        .option(ConfigOption::flag("t-flag", "a flag"))
        .option(ConfigOption::new("t-multi", OptionType::String, "multi").multi())
        .rpcmethod("t-echo", "[x]", "echo", |p, params| {
            Ok(json!({"params": params, "id": p.request_id(), "str": p.option("t-str"), "flag": p.option("t-flag")}))
        })
        .rpcmethod("t-fail", "", "fails", |_p, _params| {
            Err(RpcError::new(1234, "nope").with_data(json!({"x": 1})))
        })
        .rpcmethod("t-talk", "", "notifies", |p, _params| {
            p.log(Level::Info, "hello");
            p.message(Level::Debug, "working");
            p.progress(1, 3, Some((0, 2)));
            p.notify("t_custom", json!({"a": 1}));
            Ok(json!({}))
        })
        .hook("peer_connected", |p, params| {
            p.state_mut().push(format!("hook {}", params["peer"]["id"]));
            json!({"result": "continue"})
        })
        .hook_with(Hook::new("rpc_command").filters(["getinfo"]), |_p, _params| {
            json!({"result": "continue", "x": 1})
        })
        .subscribe("connect", |p, params| p.state_mut().push(format!("connect {params}")))
        .subscribe("shutdown", |p, _params| p.state_mut().push("shutdown".into()))
        .notification("t_custom")
        .dynamic(true)
        .rpcmethod("t-state", "", "state", |p, _params| Ok(json!(p.state())))
}

const GETMANIFEST: &str = r#"{"jsonrpc":"2.0","id":"cln:getmanifest#1","method":"getmanifest","params":{"allow-deprecated-apis":false}}"#;
const INIT: &str = r#"{"jsonrpc":"2.0","id":"cln:init#2","method":"init","params":{"options":{"t-str":"hello","t-dyn":1},"configuration":{"rpc-file":"lightning-rpc","network":"regtest"}}}"#;

#[test]
fn manifest_has_everything() {
    let out = drive(sample(), GETMANIFEST);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["id"], "cln:getmanifest#1");
    let m = &out[0]["result"];
    assert_eq!(m["options"].as_array().map(Vec::len), Some(4));
    assert_eq!(
        m["options"][1],
        json!({"name": "t-dyn", "type": "int", "default": 1, "dynamic": true, "description": "an int"})
    );
    assert_eq!(
        m["options"][3],
        json!({"name": "t-multi", "type": "string", "multi": true, "description": "multi"})
    );
    assert_eq!(
        m["rpcmethods"][0],
        json!({"name": "t-echo", "usage": "[x]", "description": "echo"})
    );
    assert_eq!(
        m["hooks"],
        json!([{"name": "peer_connected"}, {"name": "rpc_command", "filters": ["getinfo"]}])
    );
    assert_eq!(m["subscriptions"], json!(["connect", "shutdown"]));
    assert_eq!(m["notifications"], json!([{"method": "t_custom"}]));
    assert_eq!(m["dynamic"], true);
    assert_eq!(m["nonnumericids"], true);
}

#[test]
fn init_then_methods() {
    let input = format!(
        "{GETMANIFEST}{INIT}\n\n{}{}{}",
        r#"{"jsonrpc":"2.0","id":"cli:t-echo#9/cln:t-echo#3","method":"t-echo","params":["a",2]}"#,
        r#"  {"jsonrpc":"2.0","id":7,"method":"t-fail","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":"x","method":"nope","params":{}}"#,
    );
    let out = drive(sample(), &input);
    assert_eq!(out.len(), 5);
    assert_eq!(
        out[1],
        json!({"jsonrpc": "2.0", "id": "cln:init#2", "result": {}})
    );
    assert_eq!(
        out[2]["result"],
        json!({"params": ["a", 2], "id": "cli:t-echo#9/cln:t-echo#3", "str": "hello", "flag": false})
    );
    assert_eq!(
        out[3],
        json!({"jsonrpc": "2.0", "id": 7, "error": {"code": 1234, "message": "nope", "data": {"x": 1}}})
    );
    assert_eq!(out[4]["error"]["code"], -32601);
}

#[test]
fn ids_are_echoed_byte_for_byte() {
    let input = r#"{"id":"a\u00e9\/b","method":"t-fail"}{"id":1.50,"method":"t-fail"}{"id":null,"method":"t-fail"}{"id":{"k" : [1]},"method":"t-fail"}"#;
    let out = builder_output(sample(), input);
    assert!(out.contains(r#""id":"a\u00e9\/b","#), "{out}");
    assert!(out.contains(r#""id":1.50,"#), "{out}");
    assert!(out.contains(r#""id":null,"#), "{out}");
    assert!(out.contains(r#""id":{"k" : [1]},"#), "{out}");
}

fn builder_output<S>(builder: Builder<S>, input: &str) -> String {
    let out = builder
        .run_on(input.as_bytes(), Vec::new())
        .expect("run_on");
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn notifications_from_a_handler() {
    let input = r#"{"jsonrpc":"2.0","id":"r1","method":"t-talk","params":{}}"#;
    let out = drive(sample(), input);
    assert_eq!(out.len(), 5);
    assert_eq!(
        out[0],
        json!({"jsonrpc": "2.0", "method": "log", "params": {"level": "info", "message": "hello"}})
    );
    assert_eq!(
        out[1],
        json!({"jsonrpc": "2.0", "method": "message", "params": {"id": "r1", "level": "debug", "message": "working"}})
    );
    assert_eq!(
        out[2],
        json!({"jsonrpc": "2.0", "method": "progress", "params": {"id": "r1", "num": 1, "total": 3, "stage": {"num": 0, "total": 2}}})
    );
    assert_eq!(
        out[3],
        json!({"jsonrpc": "2.0", "method": "t_custom", "params": {"a": 1}})
    );
    assert_eq!(out[4]["id"], "r1");
}

#[test]
fn hooks_subscriptions_and_shutdown() {
    let input = [
        r#"{"jsonrpc":"2.0","id":"cln:peer_connected#5","method":"peer_connected","params":{"peer":{"id":"02ab"}}}"#,
        r#"{"jsonrpc":"2.0","id":"h2","method":"rpc_command","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":"h3","method":"db_write","params":{}}"#,
        r#"{"jsonrpc":"2.0","method":"connect","params":{"connect":{"id":"02ab"}}}"#,
        r#"{"jsonrpc":"2.0","method":"disconnect","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":"s","method":"t-state","params":{}}"#,
        r#"{"jsonrpc":"2.0","method":"shutdown","params":{"shutdown":{}}}"#,
        r#"{"jsonrpc":"2.0","id":"after","method":"t-state","params":{}}"#,
    ]
    .concat();
    let out = drive(sample(), &input);
    assert_eq!(out.len(), 4, "nothing after shutdown: {out:?}");
    assert_eq!(
        out[0],
        json!({"jsonrpc": "2.0", "id": "cln:peer_connected#5", "result": {"result": "continue"}})
    );
    assert_eq!(out[1]["result"], json!({"result": "continue", "x": 1}));
    // db_write has no handler: continue.
    assert_eq!(out[2]["result"], json!({"result": "continue"}));
    assert_eq!(
        out[3]["result"],
        json!(["hook \"02ab\"", "connect {\"connect\":{\"id\":\"02ab\"}}"])
    );
}

#[test]
fn setconfig_converts_and_can_refuse() {
    let builder = sample()
        .on_setconfig(|p, name, value| {
            p.state_mut().push(format!("{name}={value}"));
            if value == &json!(13) {
                Err("unlucky".into())
            } else {
                Ok(())
            }
        })
        .rpcmethod("t-dyn", "", "", |p, _params| {
            Ok(json!([p.option("t-dyn"), p.state()]))
        });
    let input = [
        INIT,
        r#"{"id":"a","method":"setconfig","params":{"config":"t-dyn","val":"5"}}"#,
        r#"{"id":"b","method":"setconfig","params":{"config":"t-dyn","val":"five"}}"#,
        r#"{"id":"c","method":"setconfig","params":{"config":"t-dyn","val":"13"}}"#,
        r#"{"id":"d","method":"setconfig","params":{"config":"t-nope","val":"1"}}"#,
        r#"{"id":"e","method":"t-dyn","params":{}}"#,
    ]
    .concat();
    let out = drive(builder, &input);
    assert_eq!(out[1]["result"], json!({}));
    assert_eq!(out[2]["error"]["code"], -32602);
    assert_eq!(out[3]["error"]["message"], "unlucky");
    assert_eq!(out[4]["error"]["code"], -32602);
    assert_eq!(out[5]["result"], json!([5, ["t-dyn=5", "t-dyn=13"]]));
}

#[test]
fn init_can_disable() {
    let builder = Builder::new().on_init(|p| match p.option_str("t-str") {
        Some("hello") => Err("no hellos".into()),
        _ => Ok(()),
    });
    let out = drive(builder, INIT);
    assert_eq!(out[0]["result"], json!({"disable": "no hellos"}));
}

#[test]
fn odd_input() {
    // Not objects, no method, a cut-off message at EOF: no answer, no error.
    let out = drive(
        sample(),
        r#"[1,2] "str" {"id":"x"} {"method":5} {"id":"y","method":"t-ec"#,
    );
    assert_eq!(
        out,
        vec![
            json!({"jsonrpc": "2.0", "id": "x", "error": {"code": -32600, "message": "Invalid request: no method"}})
        ]
    );
    // Not JSON: an error.
    assert!(Builder::new()
        .run_on(&b"{\"id\":1}hello"[..], Vec::new())
        .is_err());
}

#[test]
fn rpc_before_init_is_a_transport_error() {
    let builder =
        Builder::new().rpcmethod("call", "", "", |p, _params| p.rpc("getinfo", json!({})));
    let out = drive(builder, r#"{"id":1,"method":"call"}"#);
    assert_eq!(out[0]["error"]["code"], RpcError::TRANSPORT);
}

#[test]
fn params_by_name_or_position() {
    assert_eq!(param(&json!({"a": 1}), "a", 3), Some(&json!(1)));
    assert_eq!(param(&json!([0, 1]), "a", 1), Some(&json!(1)));
    assert_eq!(param(&json!("x"), "a", 0), None);
    assert_eq!(param(&Value::Null, "a", 0), None);
}

#[test]
fn every_level_is_one_lightningd_accepts() {
    // Level is the SDK's own (warn and error kept apart, as a plugin writes
    // them); a name lightningd does not know would get the plugin killed.
    for l in [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Unusual,
        Level::Warn,
        Level::Broken,
        Level::Error,
    ] {
        assert!(
            cln_protocol::LogLevel::parse(l.as_str()).is_some(),
            "{l} is not a level lightningd accepts"
        );
        assert_eq!(l.as_str().parse::<Level>(), Ok(l));
    }
}
