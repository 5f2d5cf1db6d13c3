//! What the host leaves behind: no orphaned plugin process once it is
//! gone.

use super::*;

/// The host killed outright (no chance to clean up): its plugin dies
/// too (PR_SET_PDEATHSIG), no orphan is left.
#[tokio::test]
async fn a_killed_host_takes_its_plugin_along() {
    let dir = tempdir();
    let plugin = dir.path().join("p.py");
    write_testplugin(&plugin, &json!({"ignore_shutdown": true}));
    let mut host = Direct::start(&[plugin.to_str().unwrap()], &[]);
    host.send(&getmanifest_bytes(1)).await;
    host.response("cln:getmanifest#1").await;
    host.request(
        "cln:init#2",
        "init",
        json!({"options": {}, "configuration": {}}),
    )
    .await;
    let v = host.request("x/cln:tp-echo#3", "tp-echo", json!({})).await;
    let child = v["result"]["pid"].as_u64().unwrap() as u32;
    let pid = host.pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    host.exited().await;
    wait_for("the plugin to die with its host", || {
        (!alive(child)).then_some(())
    })
    .await;
}
