//! lightningd's database, as plugins with the `db_write` hook see it: the
//! writes that create a fresh node's database before `init`, writes on
//! demand (`dev-db-write`), and lightningd's reaction to each answer.
//!
//! Where the rules come from (ElementsProject/lightning at v26.06):
//! - `lightningd/lightningd.c` `main`: `plugins_init` (getmanifest) comes
//!   before `wallet_new` (the database is created or upgraded), which comes
//!   before `jsonrpc_listen` and `plugins_config` (init). So a `db_write`
//!   plugin gets the schema writes between getmanifest and init, and the
//!   rpc socket does not exist yet while it does.
//! - `lightningd/plugin_hook.c` `plugin_hook_db_sync`: one request to every
//!   plugin that registered the hook, params `data_version` and `writes`,
//!   then `plugins_exclusive_loop`: lightningd does nothing else until every
//!   one has answered, however long that takes (no timeout).
//! - `lightningd/plugin_hook.c` `db_hook_response`: an answer without
//!   `result` (an error, or -4 from a plugin that died), a `result` whose
//!   `result` is not `"continue"`, or a `result` without `result`, is
//!   `fatal()`: lightningd aborts.
//! - `traces/dbwrite-startup.stdin.raw`: the exact bytes, including the
//!   schema writes of a fresh node (kept in `schema-writes.json`), whose
//!   `data_version`s repeat (1, 1, 2, 2, 3, ...): it is not one per write.

use crate::ld::{Ld, Reply};
use crate::proto::{make_id, quote, Msg};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;

/// A fresh node's database creation, as v26.06 writes it.
const SCHEMA: &str = include_str!("schema-writes.json");

/// One transaction's writes, as the hook reports it.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct Write {
    pub data_version: u64,
    pub writes: Vec<String>,
}

/// The database's state and every write reported so far.
#[derive(Default)]
pub struct Db {
    pub data_version: u64,
    pub log: Vec<Write>,
}

/// Where the stand-in keeps the node's `data_version`, so a restarted node
/// goes on counting (and does not create its database again).
fn version_file(ld: &Ld) -> std::path::PathBuf {
    ld.cfg.netdir.join("standin-data-version")
}

/// At start-up, before init: a fresh node creates its database (the traced
/// schema writes); an existing one reads its `data_version`.
pub async fn open(ld: &Arc<Ld>) {
    let mut db = ld.db.lock().await;
    if let Ok(text) = std::fs::read_to_string(version_file(ld)) {
        if let Ok(v) = text.trim().parse() {
            db.data_version = v;
            return;
        }
    }
    let schema: Vec<Write> = match serde_json::from_str(SCHEMA) {
        Ok(s) => s,
        Err(e) => {
            return ld
                .fatal(1, "lightningd", &format!("schema-writes.json: {e}"))
                .await
        }
    };
    for w in schema {
        commit(ld, &mut db, w).await;
    }
}

/// A transaction with `writes` at the next `data_version`.
pub async fn write(ld: &Arc<Ld>, writes: Vec<String>) -> u64 {
    let mut db = ld.db.lock().await;
    let data_version = db.data_version + 1;
    commit(
        ld,
        &mut db,
        Write {
            data_version,
            writes,
        },
    )
    .await;
    data_version
}

/// Reports one transaction to every `db_write` plugin and waits for all of
/// them, holding the database (see [`Ld::db`]); then it counts as written.
async fn commit(ld: &Arc<Ld>, db: &mut Db, w: Write) {
    let params = serde_json::json!({"data_version": w.data_version, "writes": w.writes});
    let mut waits = Vec::new();
    for (idx, _) in ld.hook_plugins("db_write") {
        let id = make_id(None, "db_write", ld.next_id());
        let msg = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":{},\"params\":{params}}}\n\n",
            quote("db_write")
        );
        waits.push((idx, ld.send_request(idx, &id, msg.into_bytes())));
    }
    for (idx, rx) in waits {
        let answer = match rx.await {
            Ok(Reply::Msg(raw)) => raw,
            // plugin_kill answers its pending requests with -4, in which
            // db_hook_response finds no result.
            _ => br#"{"jsonrpc":"2.0","error":{"code":-4,"message":"Plugin terminated before replying to RPC call."}}"#.to_vec(),
        };
        let cmd = ld
            .st()
            .plugins
            .get(idx)
            .map(|p| p.path.clone())
            .unwrap_or_default();
        if let Some(msg) = refused(&cmd, &answer) {
            ld.fatal(134, "lightningd", &msg).await;
        }
    }
    db.data_version = w.data_version;
    db.log.push(w);
    let _ = std::fs::write(version_file(ld), db.data_version.to_string());
}

/// What `db_hook_response` aborts for, in its words, if anything.
fn refused(cmd: &str, answer: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(answer);
    let Some(result) = Msg::parse(answer).and_then(|m| m.result) else {
        return Some(format!(
            "Plugin '{cmd}' returned an invalid response to the db_write hook: {text}"
        ));
    };
    let obj: Option<Map<String, Value>> = serde_json::from_str(result.get()).ok();
    match obj.as_ref().and_then(|o| o.get("result")) {
        Some(Value::String(s)) if s == "continue" => None,
        Some(_) => Some(format!("Plugin '{cmd}' returned failed db_write: {text}.")),
        None => Some(format!(
            "Plugin '{cmd}' returned an invalid result to the db_write hook: {text}"
        )),
    }
}
