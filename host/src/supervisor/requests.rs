//! The requests of one plugin: sent to the generation that can take
//! them, held while none can (and released once one can), answered on its
//! behalf when it is down, and settled when a generation ends without
//! answering them.
//!
//! Owns: the rules of "nothing is lost, nothing hangs": which request may
//! wait, which is answered at once and how, which goes to the next
//! generation. Must not: decide where a request from lightningd goes (the
//! router does) or change a plugin's phase.

use super::plugin::*;
use super::{InstanceOp, Supervisor};
use crate::backend::Exit;
use crate::ids::{Gen, PluginId};
use crate::jsonrpc::{self, ErrorKind};
use crate::link::Level;
use crate::router::{ReqKind, Request};

impl Supervisor {
    /// Answers every held request on the plugin's behalf, except those
    /// that only the plugin may answer (`db_write`).
    pub(super) fn flush_held(&mut self, p: PluginId) {
        let plugin = &mut self.plugins[p];
        plugin.dropped_notifications += plugin.held_notifications.len() as u64;
        plugin.held_notifications.clear();
        let held = std::mem::take(&mut self.plugins[p].held);
        for req in held {
            self.unavailable(p, req);
        }
    }

    /// Answers a request no generation of `p` can take now.
    pub(crate) fn unavailable(&mut self, p: PluginId, req: Request) {
        let plugin = &mut self.plugins[p];
        match &req.kind {
            ReqKind::Hook(hook) if req.kind.must_reach_plugin() => {
                let why = plugin.phase().why_not_serving();
                self.out.log(
                    Level::Warn,
                    format!(
                        "[{}] a {hook} waits for a version that can answer it ({why}), and lightningd waits with it: save a fixed version of the plugin",
                        plugin.name
                    ),
                );
                plugin.held.push_back(req)
            }
            ReqKind::Hook(_) => self.hook_continues(req),
            ReqKind::Rpc => {
                let why = plugin.phase().why_not_serving();
                let msg = format!(
                    "{} is not running: {why}. Fix it and save the file, or call autoreload-restart.",
                    plugin.name
                );
                self.out
                    .send(jsonrpc::error(&req.id, ErrorKind::Down, &msg));
            }
        }
    }

    /// Settles what a generation that ended never answered: rpc calls get
    /// an error; hooks go to the next generation, unless it was stopped for
    /// running away (then they continue: the hook would only run away
    /// again).
    pub(super) fn orphans(&mut self, p: PluginId, number: Gen, exit: &Exit, reloaded: bool) {
        let name = self.plugins[p].name.clone();
        for f in self.router.orphaned(p, number) {
            match f.request.kind {
                ReqKind::Hook(_)
                    if exit.sandbox.is_some() && !f.request.kind.must_reach_plugin() =>
                {
                    self.hook_continues(f.request)
                }
                ReqKind::Hook(_) if reloaded => self.dispatch_to(p, f.request),
                ReqKind::Hook(ref hook)
                    if f.request.crashes > 0 && !f.request.kind.must_reach_plugin() =>
                {
                    let w = format!(
                        "[{name}] the {hook} hook was in flight when generation {number} {} too: answered continue (as lightningd does when a plugin dies in a hook) rather than sent to the next generation",
                        exit.how
                    );
                    self.plugin_warn(p, super::plugin::WarnKind::Hook, w);
                    self.hook_continues(f.request);
                }
                ReqKind::Hook(_) => {
                    let mut req = f.request;
                    req.crashes = req.crashes.saturating_add(1);
                    self.plugins[p].held.push_back(req);
                }
                ReqKind::Rpc => self.out.send(jsonrpc::error(
                    &f.request.id,
                    exit.error_kind(reloaded),
                    &format!(
                        "{name} {} before answering {}: generation {number} {}. Call again.",
                        if reloaded { "was reloaded" } else { "crashed" },
                        f.request.method,
                        exit.how
                    ),
                )),
            }
        }
    }

    /// Hands every held request to the generation that can take them now
    /// (or holds them again, in order, if none can).
    pub(super) fn release_held(&mut self, p: PluginId) {
        let held = std::mem::take(&mut self.plugins[p].held);
        for req in held {
            self.dispatch_to(p, req);
        }
    }

    /// Sends a request to `p`'s serving generation, or holds it.
    ///
    /// A request is held only while the host itself is bringing a
    /// generation up (it sent getmanifest or init and waits for the
    /// plugin), or for a restart already on a timer: never for something
    /// only lightningd can send. Before lightningd's own init, a
    /// generation that answered getmanifest takes requests at once:
    /// lightningd calls `db_write` there and waits for each answer before
    /// it sends init (see `cln-v26.06/traces/dbwrite-startup.*`).
    pub(crate) fn dispatch_to(&mut self, p: PluginId, req: Request) {
        let before_init = self.init.is_none();
        let plugin = &mut self.plugins[p];
        if let Some(gen) = plugin.phase().takes_requests(before_init) {
            let number = gen.number;
            self.instance(p, number, InstanceOp::Send(req.raw.clone()));
            return self.router.sent(p, number, req);
        }
        match plugin.phase() {
            Phase::Stopping {
                then: Then::Down(_),
                ..
            } => self.unavailable(p, req),
            Phase::Down { .. } if plugin.retry.is_none() => self.unavailable(p, req),
            // Starting, draining, stopping for a restart, or a restart due
            // shortly (file busy, crash back-off).
            _ => plugin.held.push_back(req),
        }
    }

    /// A hook goes on to the next plugin of its chain, or, at the end of
    /// the chain, lightningd is told to continue.
    pub(crate) fn hook_continues(&mut self, mut req: Request) {
        if req.chain.is_empty() {
            return self.out.send(jsonrpc::hook_continue(&req.id));
        }
        let next = req.chain.remove(0);
        self.dispatch_to(next, req);
    }

    /// After an answer: a generation that was waiting to have nothing in
    /// flight goes on (to stop, or to hand its state over).
    pub(super) fn check_drained(&mut self, p: PluginId) {
        match self.plugins[p].phase() {
            Phase::Draining { .. } if self.router.count(p) == 0 => self.drained(p),
            Phase::Swapping {
                gen,
                step: Step::Handover,
                ..
            } if self.router.count_generation(p, gen.number) == 0 => self.ask_state(p),
            _ => {}
        }
    }
}
