//! The host's own rpc methods: `autoreload-status`, `autoreload-restart`
//! and `autoreload-reregister`.
//!
//! Owns: their parameters, their answers and their errors. Must not:
//! reload anything but through [`super::lifecycle`], or talk to lightningd
//! itself (re-registering goes out as [`Output::FindWrapper`] and
//! [`Output::RestartThrough`]).

use super::*;
use crate::framing::{Message, RawId};
use crate::ids::PluginId;
use crate::jsonrpc::{self, ErrorKind};
use crate::link::Level;
use crate::manifest::{self, Manifest};
use serde_json::{json, Value};
use std::path::PathBuf;

impl Supervisor {
    /// Makes lightningd register the plugins' current manifests, by
    /// restarting the host through its wrapper (see
    /// [`crate::reregister`]).
    pub(crate) fn reregister(&mut self, caller: Option<RawId>) {
        let registered: Vec<&Manifest> = self
            .plugins
            .iter()
            .filter_map(|p| p.registered.as_ref())
            .collect();
        let check = if self.reregistering {
            Err("a re-registration is already under way".to_string())
        } else if manifest::merged(&registered)["dynamic"] != Value::Bool(true) {
            Err("lightningd keeps a non-dynamic plugin registered as it started: a plugin declares \"dynamic\": false. Restart lightningd".into())
        } else if self.shutting_down {
            Err("shutting down".into())
        } else {
            self.config
                .rpc_socket
                .clone()
                .ok_or_else(|| "lightningd's rpc socket is not known".to_string())
        };
        match check {
            Ok(socket) => {
                self.reregistering = true;
                let managed = self.plugins.iter().map(|p| p.path.clone()).collect();
                self.out.push(Output::FindWrapper {
                    caller,
                    socket,
                    managed,
                });
            }
            Err(why) => self.on_reregister(caller, Err(why)),
        }
    }

    pub(super) fn on_reregister(
        &mut self,
        caller: Option<RawId>,
        outcome: Result<PathBuf, String>,
    ) {
        match outcome {
            Ok(wrapper) => {
                let msg = format!(
                    "re-registering: lightningd restarts cln-autoreload from {}, which registers the plugins' current manifests; calls in flight at that moment get error -4",
                    wrapper.display()
                );
                self.out.log(Level::Info, &msg);
                if let Some(id) = caller {
                    self.out.send(jsonrpc::response(
                        &id,
                        json!({"wrapper": wrapper, "message": msg}),
                    ));
                }
                if let Some(socket) = self.config.rpc_socket.clone() {
                    self.out.push(Output::RestartThrough { socket, wrapper });
                }
            }
            Err(why) => {
                self.reregistering = false;
                self.out
                    .log(Level::Warn, format!("cannot re-register: {why}"));
                if let Some(id) = caller {
                    self.out.send(jsonrpc::error(
                        &id,
                        ErrorKind::ReregisterFailed,
                        &format!("cannot re-register: {why}"),
                    ));
                }
            }
        }
    }

    pub(super) fn find_plugin(&self, params: Option<&Value>) -> Result<PluginId, String> {
        let arg = params.and_then(|p| match p {
            Value::Array(a) => a.first().cloned(),
            Value::Object(o) => o.get("plugin").cloned(),
            _ => None,
        });
        let names = || {
            self.plugins
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match arg {
            None | Some(Value::Null) if self.plugins.len() == 1 => Ok(PluginId(0)),
            None | Some(Value::Null) => Err(format!("which plugin? one of: {}", names())),
            Some(Value::String(s)) => self
                .plugins
                .ids()
                .find(|&p| {
                    self.plugins[p].name == s || self.plugins[p].path.as_os_str() == s.as_str()
                })
                .ok_or_else(|| format!("no managed plugin '{s}'; managed: {}", names())),
            Some(other) => Err(format!("plugin must be a name, not {other}")),
        }
    }

    pub(super) fn status(&mut self, id: RawId, m: &Message) {
        let params = jsonrpc::parse(&m.raw).and_then(|v| v.get("params").cloned());
        let has_arg = match &params {
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => o.contains_key("plugin"),
            _ => false,
        };
        let chosen: Vec<PluginId> = if has_arg {
            match self.find_plugin(params.as_ref()) {
                Ok(p) => vec![p],
                Err(e) => {
                    return self
                        .out
                        .send(jsonrpc::error(&id, ErrorKind::InvalidParams, &e))
                }
            }
        } else {
            self.plugins.ids().collect()
        };
        let entries = chosen
            .into_iter()
            .map(|p| (p, self.plugin_status(p)))
            .collect();
        self.out.push(Output::Status { id, entries });
    }

    pub(super) fn restart_method(&mut self, id: RawId, m: &Message) {
        if self.shutting_down {
            return self.out.send(jsonrpc::error(
                &id,
                ErrorKind::ShuttingDown,
                "shutting down",
            ));
        }
        let params = jsonrpc::parse(&m.raw).and_then(|v| v.get("params").cloned());
        match self.find_plugin(params.as_ref()) {
            Ok(p) => self.restart(p, id),
            Err(e) => self
                .out
                .send(jsonrpc::error(&id, ErrorKind::InvalidParams, &e)),
        }
    }
}
