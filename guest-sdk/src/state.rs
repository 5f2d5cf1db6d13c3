//! Handing the plugin's state from one version to the next across a
//! cln-autoreload reload (the host's `autoreload-save-state` and
//! `autoreload-restore-state` requests).
//!
//! The state travels as `{"schema": N, "data": <the state as JSON>}`: the
//! host treats it as opaque, and the schema number lets the new version
//! tell data written for an older state type from its own.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{Level, Plugin, RpcError};

/// The host's requests: to the old version, before it stops; to the new
/// version, after `init`.
pub(crate) use cln_protocol::handover::{RESTORE_STATE, SAVE_STATE};

/// JSON-RPC's "internal error" code: the state could not be saved, which is
/// the plugin's fault, not the host's.
const INTERNAL_ERROR: i64 = -32603;

pub(crate) type MigrateFn<S> = Box<dyn FnMut(u64, Value) -> Option<S>>;

/// What [`Builder::keep_state`](crate::Builder::keep_state) and friends
/// declared. The serde functions are kept as plain function pointers so
/// that only the builder methods that turn keeping on need `S: Serialize +
/// DeserializeOwned`: plugins whose state is not serde (or `()`) compile as
/// before.
pub(crate) struct Keeper<S> {
    pub(crate) schema: u64,
    save: fn(&S) -> serde_json::Result<Value>,
    load: fn(&Value) -> serde_json::Result<S>,
    pub(crate) migrate: Option<MigrateFn<S>>,
}

impl<S: Serialize + DeserializeOwned> Keeper<S> {
    pub(crate) fn new() -> Self {
        Keeper {
            schema: 1,
            save: to_json::<S>,
            load: from_json::<S>,
            migrate: None,
        }
    }
}

fn to_json<S: Serialize>(state: &S) -> serde_json::Result<Value> {
    serde_json::to_value(state)
}

fn from_json<S: DeserializeOwned>(data: &Value) -> serde_json::Result<S> {
    S::deserialize(data)
}

/// What became of a handed-over state.
enum Restored<S> {
    /// It was this version's schema and type.
    Same(S),
    /// `migrate_state` converted it; why it had to.
    Migrated(S, String),
    /// Not usable: the plugin keeps its fresh state; why.
    Fresh(String),
}

/// The envelope this SDK saves. Anything else (another SDK's state, a
/// hand-written request) is not ours to guess at. Extra fields are
/// allowed, so that a later SDK may add some.
#[derive(Deserialize)]
struct Envelope {
    schema: u64,
    data: Value,
}

impl<S> Keeper<S> {
    /// `autoreload-save-state`: `{"state": {"schema": N, "data": ...}}`, or
    /// an error (never a panic) when the state does not serialize, e.g. a
    /// map with non-string keys. The host then hands nothing over and says
    /// why.
    pub(crate) fn save(&self, plugin: &Plugin<S>) -> Result<Value, RpcError> {
        match (self.save)(plugin.state()) {
            Ok(data) => Ok(json!({"state": {"schema": self.schema, "data": data}})),
            Err(e) => Err(RpcError::new(
                INTERNAL_ERROR,
                format!("cannot save the plugin's state: it does not serialize to JSON: {e}"),
            )),
        }
    }

    /// `autoreload-restore-state {state}`: installs the state, converted if
    /// need be. When it cannot be used, logs why and keeps the fresh state
    /// this version started with: the plugin works, only the memory of the
    /// previous version is lost, so the answer is still a success. Only a
    /// request without `state` is an error.
    pub(crate) fn restore(
        &mut self,
        plugin: &mut Plugin<S>,
        params: Value,
    ) -> Result<Value, RpcError> {
        let state = match params {
            Value::Object(mut params) => params.remove("state"),
            _ => None,
        };
        let Some(state) = state else {
            return Err(RpcError::invalid_params(format!(
                "{RESTORE_STATE}: params.state is missing"
            )));
        };
        match self.convert(state) {
            Restored::Same(state) => *plugin.state_mut() = state,
            Restored::Migrated(state, why) => {
                *plugin.state_mut() = state;
                plugin.log(
                    Level::Info,
                    format!("converted the state handed over by the previous version with migrate_state: {why}"),
                );
            }
            Restored::Fresh(why) => plugin.log(
                Level::Warn,
                format!("discarded the state handed over by the previous version, starting with fresh state: {why}"),
            ),
        }
        Ok(json!({}))
    }

    fn convert(&mut self, state: Value) -> Restored<S> {
        let Ok(Envelope { schema, data }) = serde_json::from_value(state) else {
            return Restored::Fresh(
                "it is not {\"schema\": <number>, \"data\": ...} as cln-autoreload-guest saves it \
                 (was the previous version written with another SDK?)"
                    .into(),
            );
        };
        let why = if schema == self.schema {
            match (self.load)(&data) {
                Ok(state) => return Restored::Same(state),
                Err(e) => format!(
                    "its data (schema {schema}) does not fit this version's state type: {e}"
                ),
            }
        } else {
            format!(
                "it has schema {schema} and this version has schema {}",
                self.schema
            )
        };
        match &mut self.migrate {
            Some(migrate) => match migrate(schema, data) {
                Some(state) => Restored::Migrated(state, why),
                None => Restored::Fresh(format!(
                    "{why}, and migrate_state returned None for schema {schema}"
                )),
            },
            // Say what to do about it: the developer reading this just
            // changed the state type.
            None if schema == self.schema => Restored::Fresh(format!(
                "{why} (when the state type changes, mark new fields #[serde(default)], or raise \
                 Builder::state_schema and convert old data in Builder::migrate_state)"
            )),
            None => Restored::Fresh(format!(
                "{why} (give Builder::migrate_state a conversion to keep such data)"
            )),
        }
    }
}
