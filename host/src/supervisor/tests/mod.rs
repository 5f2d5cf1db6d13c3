//! Table tests of the supervisor: every phase a plugin can be in × every
//! event that can reach it, driven by hand (no process, file or clock),
//! each checked for what lightningd cannot survive (a request never
//! answered, one answered twice, an error answer to a hook); then the
//! awkward rows one by one, with what must happen.
//!
//! A [`Rig`] plays the loop and the plugin instances: it answers spawns,
//! records what each instance is sent, makes killed or closed instances
//! exit when told to settle, answers requests like a well-behaved plugin,
//! and moves the clock to the supervisor's deadlines.

mod rig;
mod scenarios;
mod table;
