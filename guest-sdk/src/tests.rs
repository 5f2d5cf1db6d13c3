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
    // Level keeps warn and error apart from unusual and broken, as a plugin
    // writes them; a name lightningd does not know would get the plugin
    // killed.
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
        assert_eq!(serde_json::to_value(l).unwrap(), json!(l.as_str()));
        assert_eq!(
            serde_json::from_value::<Level>(json!(l.as_str())).unwrap(),
            l
        );
    }
}

mod state {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};
    use serde_json::{json, Value};

    use super::{drive, GETMANIFEST, INIT};
    use crate::Builder;

    const SAVE: &str = r#"{"jsonrpc":"2.0","id":"autoreload:save-state#3","method":"autoreload-save-state","params":{}}"#;

    fn restore(state: Value) -> String {
        json!({"jsonrpc": "2.0", "id": "autoreload:restore-state#4", "method": "autoreload-restore-state", "params": {"state": state}}).to_string()
    }

    const COUNT: &str = r#"{"jsonrpc":"2.0","id":"c","method":"count","params":{}}"#;

    #[derive(Debug, Default, Serialize, Deserialize)]
    struct Counter {
        calls: u64,
        names: Vec<String>,
    }

    /// A plugin counting `count` calls, keeping its state.
    fn counter() -> Builder<Counter> {
        Builder::with_state(Counter::default())
            .keep_state()
            .rpcmethod("count", "", "counts", |p, _params| {
                p.state_mut().calls += 1;
                Ok(json!(p.state().calls))
            })
    }

    /// The answer to the request with this id.
    fn answer<'a>(out: &'a [Value], id: &str) -> &'a Value {
        out.iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("no answer to {id}: {out:?}"))
    }

    /// The log notifications' (level, message).
    fn logs(out: &[Value]) -> Vec<(String, String)> {
        out.iter()
            .filter(|m| m["method"] == "log")
            .map(|m| {
                (
                    m["params"]["level"].as_str().unwrap_or_default().to_owned(),
                    m["params"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn manifest_declares_state_and_hides_the_methods() {
        let out = drive(counter(), GETMANIFEST);
        let m = &out[0]["result"];
        assert_eq!(m["autoreload"], json!({"state": true}));
        assert_eq!(
            m["rpcmethods"],
            json!([{"name": "count", "usage": "", "description": "counts"}])
        );
        // Not even when a plugin registers them itself.
        let m = counter()
            .rpcmethod("autoreload-save-state", "", "", |_p, _params| Ok(json!(1)))
            .rpcmethod("autoreload-restore-state", "", "", |_p, _params| {
                Ok(json!(1))
            })
            .manifest();
        assert_eq!(m["rpcmethods"].as_array().map(Vec::len), Some(1), "{m}");
    }

    #[test]
    fn save_then_restore_in_the_next_version() {
        let input = [GETMANIFEST, INIT, COUNT, COUNT, SAVE].concat();
        let out = drive(counter(), &input);
        let saved = answer(&out, "autoreload:save-state#3");
        assert_eq!(
            saved["result"],
            json!({"state": {"schema": 1, "data": {"calls": 2, "names": []}}})
        );

        let input = [
            GETMANIFEST,
            INIT,
            &restore(saved["result"]["state"].clone()),
            COUNT,
        ]
        .concat();
        let out = drive(counter(), &input);
        assert_eq!(
            *answer(&out, "autoreload:restore-state#4"),
            json!({"jsonrpc": "2.0", "id": "autoreload:restore-state#4", "result": {}})
        );
        assert_eq!(answer(&out, "c")["result"], 3);
        assert_eq!(logs(&out), vec![]);
    }

    #[test]
    fn another_schema_without_migration_starts_fresh_with_a_warning() {
        let old = json!({"schema": 1, "data": {"calls": 7, "names": []}});
        let input = [INIT, &restore(old), COUNT].concat();
        let out = drive(counter().state_schema(2), &input);
        assert_eq!(
            answer(&out, "autoreload:restore-state#4")["result"],
            json!({})
        );
        assert_eq!(answer(&out, "c")["result"], 1);
        let logs = logs(&out);
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert_eq!(logs[0].0, "warn");
        assert!(
            logs[0].1.contains("schema 1 and this version has schema 2")
                && logs[0].1.contains("migrate_state"),
            "{logs:?}"
        );
    }

    #[test]
    fn another_schema_with_migration() {
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let builder = counter()
            .state_schema(2)
            .migrate_state({
                let seen = seen.clone();
                move |schema, data| {
                    seen.borrow_mut().push((schema, data.clone()));
                    // Schema 1 was a bare number.
                    Some(Counter {
                        calls: data.as_u64()?,
                        names: vec!["migrated".into()],
                    })
                }
            })
            .rpcmethod("names", "", "", |p, _params| Ok(json!(p.state().names)));
        let names = r#"{"id":"n","method":"names"}"#;
        let input = [
            INIT,
            &restore(json!({"schema": 1, "data": 41})),
            COUNT,
            names,
        ]
        .concat();
        let out = drive(builder, &input);
        assert_eq!(
            answer(&out, "autoreload:restore-state#4")["result"],
            json!({})
        );
        assert_eq!(answer(&out, "c")["result"], 42);
        assert_eq!(answer(&out, "n")["result"], json!(["migrated"]));
        assert_eq!(*seen.borrow(), vec![(1, json!(41))]);
        let logs = logs(&out);
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert_eq!(logs[0].0, "info", "{logs:?}");
    }

    #[test]
    fn a_migration_that_gives_up_starts_fresh_with_a_warning() {
        let builder = counter()
            .state_schema(3)
            .migrate_state(|_schema, _data| None);
        let input = [INIT, &restore(json!({"schema": 2, "data": {}})), COUNT].concat();
        let out = drive(builder, &input);
        assert_eq!(
            answer(&out, "autoreload:restore-state#4")["result"],
            json!({})
        );
        assert_eq!(answer(&out, "c")["result"], 1);
        let logs = logs(&out);
        assert_eq!(logs[0].0, "warn");
        assert!(
            logs[0]
                .1
                .contains("migrate_state returned None for schema 2"),
            "{logs:?}"
        );
    }

    #[test]
    fn same_schema_that_does_not_deserialize_goes_to_the_migration_or_starts_fresh() {
        // Someone changed the type without raising the schema.
        let bad = json!({"schema": 1, "data": {"calls": "many"}});
        let input = [INIT, &restore(bad.clone()), COUNT].concat();
        let out = drive(counter(), &input);
        assert_eq!(
            answer(&out, "autoreload:restore-state#4")["result"],
            json!({})
        );
        assert_eq!(answer(&out, "c")["result"], 1);
        let logs = logs(&out);
        assert_eq!(logs[0].0, "warn");
        assert!(
            logs[0].1.contains("does not fit this version's state type")
                && logs[0].1.contains("state_schema"),
            "{logs:?}"
        );

        let builder = counter().migrate_state(|schema, data| {
            assert_eq!(schema, 1);
            (data["calls"] == "many").then(|| Counter {
                calls: 100,
                names: vec![],
            })
        });
        let out = drive(builder, &[INIT, &restore(bad), COUNT].concat());
        assert_eq!(answer(&out, "c")["result"], 101);
    }

    #[test]
    fn garbage_state_starts_fresh_with_a_warning() {
        for garbage in [
            json!(null),
            json!("state"),
            json!({"calls": 3}),
            json!({"schema": -1, "data": {}}),
            json!({"schema": 1}),
        ] {
            let input = [INIT, &restore(garbage.clone()), COUNT].concat();
            let out = drive(counter(), &input);
            assert_eq!(
                answer(&out, "autoreload:restore-state#4")["result"],
                json!({}),
                "{garbage}"
            );
            assert_eq!(answer(&out, "c")["result"], 1, "{garbage}");
            let logs = logs(&out);
            assert_eq!(logs.len(), 1, "{garbage}: {logs:?}");
            assert_eq!(logs[0].0, "warn");
            assert!(logs[0].1.contains("\"schema\""), "{logs:?}");
        }
    }

    #[test]
    fn a_restore_without_state_is_an_error() {
        for params in [json!({}), json!([]), json!(null), json!({"stat": 1})] {
            let request =
                json!({"id": "r", "method": "autoreload-restore-state", "params": params});
            let out = drive(counter(), &request.to_string());
            assert_eq!(out[0]["error"]["code"], -32602, "{params}");
            assert!(
                out[0]["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("params.state")),
                "{out:?}"
            );
        }
    }

    #[test]
    fn a_state_that_does_not_serialize_is_an_error_answer() {
        // serde_json refuses map keys that are not strings.
        let builder = Builder::with_state(BTreeMap::from([((1, 2), 3)])).keep_state();
        let out = drive(builder, SAVE);
        assert_eq!(out[0]["id"], "autoreload:save-state#3");
        assert_eq!(out[0]["error"]["code"], -32603);
        assert!(
            out[0]["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("does not serialize")),
            "{out:?}"
        );
    }

    #[test]
    fn state_the_host_restores_replaces_what_init_set() {
        let builder = counter().on_init(|p| {
            p.state_mut().names.push("init".into());
            Ok(())
        });
        let input = [
            INIT,
            &restore(json!({"schema": 1, "data": {"calls": 5, "names": ["old"]}})),
        ]
        .concat();
        let builder = builder.rpcmethod("names", "", "", |p, _params| Ok(json!(p.state().names)));
        let out = drive(builder, &(input + r#"{"id":"n","method":"names"}"#));
        assert_eq!(answer(&out, "n")["result"], json!(["old"]));
    }

    #[test]
    fn without_keep_state_nothing_changes() {
        // Stateless, and with state that is not kept: no manifest field, and
        // the host's requests are unknown methods.
        let stateless = Builder::new().rpcmethod("hi", "", "", |_p, _params| Ok(json!("hi")));
        let unkept = Builder::with_state(Counter::default());
        let input = [
            GETMANIFEST,
            INIT,
            SAVE,
            &restore(json!({"schema": 1, "data": {}})),
        ]
        .concat();
        for out in [drive(stateless, &input), drive(unkept, &input)] {
            assert_eq!(out.len(), 4, "{out:?}");
            assert!(out[0]["result"].get("autoreload").is_none(), "{out:?}");
            assert_eq!(out[2]["id"], "autoreload:save-state#3");
            assert_eq!(out[2]["error"]["code"], -32601);
            assert_eq!(out[3]["error"]["code"], -32601);
        }
    }
}
