//! The manifest checks, merge and diff, on JSON values.

use super::*;
use serde_json::json;

fn trace_manifest() -> Value {
    json!({
        "options": [
            {"name": "trace-str", "type": "string", "default": "dflt", "description": "a string"},
            {"name": "trace-multi", "type": "string", "multi": true, "description": "multi string"},
            {"name": "trace-dyn", "type": "int", "default": 1, "dynamic": true, "description": "dynamic int"},
            {"name": "trace-secret", "type": "string-conceal", "default": "s", "description": "concealed"}
        ],
        "rpcmethods": [{"name": "trace-echo", "usage": "[a] [b]", "description": "echo"}],
        "subscriptions": ["connect", "shutdown", "trace_custom"],
        "hooks": [{"name": "rpc_command", "filters": ["getinfo"]}, {"name": "peer_connected"}],
        "notifications": [{"method": "trace_custom"}],
        "featurebits": {},
        "nonnumericids": true, "cancheck": true, "dynamic": true,
        "custommessages": [11008]
    })
}

#[test]
fn a_good_manifest_passes_unchanged_and_merges_with_host_entries() {
    let (m, problems) = Manifest::from_result(&trace_manifest()).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let merged = merged(&[&m]);
    let orig = trace_manifest();
    for key in [
        "nonnumericids",
        "cancheck",
        "dynamic",
        "custommessages",
        "featurebits",
        "hooks",
        "notifications",
    ] {
        assert_eq!(merged[key], orig[key], "{key}");
    }
    let opts = merged["options"].as_array().unwrap();
    assert_eq!(&opts[..4], orig["options"].as_array().unwrap().as_slice());
    assert!(opts
        .iter()
        .any(|o| o["name"] == "autoreload-plugin" && o["multi"] == true));
    let methods = merged["rpcmethods"].as_array().unwrap();
    assert_eq!(methods[0], orig["rpcmethods"][0]);
    assert!(methods.iter().any(|o| o["name"] == "autoreload-status"));
    // "shutdown" already there: not added twice.
    assert_eq!(merged["subscriptions"], orig["subscriptions"]);
}

#[test]
fn the_state_declaration_and_its_methods_never_reach_lightningd() {
    let mut v = trace_manifest();
    v["autoreload"] = json!({"state": true});
    v["rpcmethods"].as_array_mut().unwrap().extend([
        json!({"name": "autoreload-save-state", "usage": ""}),
        json!({"name": "autoreload-restore-state", "usage": "state"}),
    ]);
    let (m, problems) = Manifest::from_result(&v).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert!(m.keeps_state);
    let merged = merged(&[&m]);
    assert!(merged.get("autoreload").is_none());
    let names: Vec<&str> = merged["rpcmethods"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with("-state")), "{names:?}");

    v["autoreload"] = json!({"state": "yes"});
    let (m, problems) = Manifest::from_result(&v).unwrap();
    assert!(!m.keeps_state);
    assert!(problems[0].contains("{\"state\": true}"), "{problems:?}");
    assert!(
        !Manifest::from_result(&trace_manifest())
            .unwrap()
            .0
            .keeps_state
    );
}

#[test]
fn several_plugins_register_each_hook_once_with_filters_merged() {
    let a = json!({"options": [], "rpcmethods": [{"name": "a", "usage": ""}],
                   "hooks": [{"name": "rpc_command", "filters": ["getinfo"]}, "peer_connected"]});
    let b = json!({"options": [], "rpcmethods": [{"name": "b", "usage": ""}],
                   "hooks": [{"name": "rpc_command", "filters": ["pay"]}, {"name": "peer_connected"}]});
    let (a, _) = Manifest::from_result(&a).unwrap();
    let (b, _) = Manifest::from_result(&b).unwrap();
    let m = merged(&[&a, &b]);
    assert_eq!(
        m["hooks"],
        json!([{"name": "rpc_command", "filters": ["getinfo", "pay"]}, {"name": "peer_connected"}])
    );
    assert_eq!(
        m["rpcmethods"].as_array().unwrap().len(),
        2 + host_methods().len()
    );
    assert!(conflicts(&a, &b).is_empty());
    assert_eq!(conflicts(&a, &a), vec!["method 'a'".to_string()]);
    let call = |m: &str| json!({"rpc_command": {"method": m}});
    assert!(hook_wants(&a, "rpc_command", Some(&call("getinfo"))));
    assert!(!hook_wants(&a, "rpc_command", Some(&call("pay"))));
    assert!(hook_wants(&a, "peer_connected", None));
}

#[test]
fn host_subscribes_to_shutdown_even_if_child_does_not() {
    let (m, _) = Manifest::from_result(&json!({"options": [], "rpcmethods": []})).unwrap();
    assert_eq!(merged(&[&m])["subscriptions"], json!(["shutdown"]));
}

#[test]
fn entries_lightningd_would_kill_for_are_dropped_with_a_reason() {
    let bad = json!({
        "rpcmethods": [{"name": "ok", "usage": ""}, {"name": "nousage"}, {"usage": "x"},
                       {"name": "ok", "usage": "dup"}, {"name": "autoreload-status", "usage": ""}],
        "options": [{"name": "o", "type": "float", "description": "d"}, {"name": "p", "type": "int"}],
        "hooks": ["peer_connected", "no_such_hook", "peer_connected", {"name": "db_write", "filters": ["x"]},
                  {"name": "rpc_command", "filters": "getinfo"}],
        "nonnumericids": false,
        "featurebits": {"node": "0100"},
        "dynamic": true
    });
    let (m, problems) = Manifest::from_result(&bad).unwrap();
    assert_eq!(m.methods.keys().collect::<Vec<_>>(), vec!["ok"]);
    assert!(m.options.is_empty());
    assert_eq!(
        m.hooks.keys().collect::<Vec<_>>(),
        vec!["db_write", "peer_connected", "rpc_command"]
    );
    assert!(m.hooks["db_write"].get("filters").is_none());
    assert!(m.hooks["rpc_command"].get("filters").is_none());
    assert!(m.value.get("nonnumericids").is_none());
    assert_eq!(m.value["dynamic"], false);
    let text = problems.join("\n");
    for needle in [
        "nousage",
        "usage",
        "float",
        "'p'",
        "no_such_hook",
        "twice",
        "filters",
        "not an array",
        "nonnumericids",
        "featurebits",
        "autoreload-status",
    ] {
        assert!(
            text.contains(needle),
            "no problem mentions {needle}: {text}"
        );
    }
}

// Found by fuzzing: the host registered itself as dynamic (its default)
// while passing on a child's featurebits, and lightningd kills that.
#[test]
fn featurebits_make_the_merged_manifest_non_dynamic() {
    let plain = json!({"options": [], "rpcmethods": [], "dynamic": true});
    let feat = json!({"options": [], "rpcmethods": [], "featurebits": {"node": "0100"}});
    let (plain, _) = Manifest::from_result(&plain).unwrap();
    let (feat, _) = Manifest::from_result(&feat).unwrap();
    for children in [vec![&feat], vec![&plain, &feat], vec![&feat, &plain]] {
        let m = merged(&children);
        assert_eq!(m["featurebits"], json!({"node": "0100"}));
        assert_eq!(m["dynamic"], false, "{m}");
    }
    assert_eq!(merged(&[&plain])["dynamic"], true);
}

// Found by fuzzing: lightningd kills a plugin whose "dynamic" is not a
// boolean, and the checks passed any value on.
#[test]
fn a_dynamic_that_is_not_a_boolean_is_removed() {
    let (m, problems) =
        Manifest::from_result(&json!({"options": [], "rpcmethods": [], "dynamic": 1})).unwrap();
    assert!(m.value.get("dynamic").is_none());
    assert!(
        problems.iter().any(|p| p.contains("dynamic")),
        "{problems:?}"
    );
    assert_eq!(merged(&[&m])["dynamic"], true);
}

#[test]
fn missing_arrays_and_non_objects_are_reported() {
    let (m, problems) = Manifest::from_result(&json!({})).unwrap();
    assert!(m.methods.is_empty());
    assert_eq!(problems.len(), 2);
    assert!(Manifest::from_result(&json!([1])).is_err());
}

#[test]
fn diff_names_every_kind_of_change() {
    let (a, _) = Manifest::from_result(&trace_manifest()).unwrap();
    let mut v = trace_manifest();
    v["rpcmethods"] = json!([{"name": "trace-echo", "usage": "[a]", "description": "echo"},
                             {"name": "new-one", "usage": "", "description": "n"}]);
    v["hooks"] = json!(["peer_connected"]);
    v["featurebits"] = json!({"node": "02"});
    v["dynamic"] = json!(false);
    let (b, _) = Manifest::from_result(&v).unwrap();
    let d = Diff::between(&a, &b);
    let s = d.to_string();
    assert!(s.contains("+method new-one"), "{s}");
    assert!(s.contains("~method trace-echo"), "{s}");
    assert!(s.contains("-hook rpc_command"), "{s}");
    assert!(s.contains("~field featurebits"), "{s}");
    assert!(Diff::between(&a, &a).is_empty());
}

// The lists of lightningd's own names are v26.06.6's: a name from each
// kind of source (a dev-only command, a built-in plugin's, an alias).
#[test]
fn lightningd_names_are_refused_whatever_registers_them() {
    let v = json!({
        "rpcmethods": [{"name": "dev-memleak", "usage": ""}, {"name": "upgradewallet", "usage": ""},
                       {"name": "createoffer", "usage": ""}, {"name": "mine", "usage": ""}],
        "options": [{"name": "wumbo", "type": "flag", "description": "d"},
                    {"name": "dev-fast-gossip", "type": "flag", "description": "d"},
                    {"name": "max-locktime-blocks", "type": "int", "description": "d"}]
    });
    let (m, problems) = Manifest::from_result(&v).unwrap();
    assert_eq!(m.methods.keys().collect::<Vec<_>>(), vec!["mine"]);
    let kept: Vec<&str> = m.options.iter().map(|o| o.name.as_str()).collect();
    // max-locktime-blocks is no longer lightningd's (v26.06.6).
    assert_eq!(kept, ["max-locktime-blocks"]);
    assert_eq!(problems.len(), 5, "{problems:?}");
}
