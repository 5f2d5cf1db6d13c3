#!/usr/bin/env python3
"""{{name}}: a Core Lightning plugin written with pyln-client.

Made by `cln-autoreload new`. Under cln-autoreload every save of this file
reloads the plugin, while lightningd keeps running:

    lightningd --plugin=/path/to/cln-autoreload --autoreload-plugin={{plugin_path}}
    lightning-cli {{name}}-hello Alice

stdout is the channel to lightningd: never print(); use plugin.log().
"""

from pyln.client import Plugin

try:
    from cln_autoreload_state import keep_state
except ImportError:
    keep_state = None

# Change it, save, and call again: the reloaded version answers.
VERSION = "1"

plugin = Plugin()

# An option: `--{{name}}-greeting=Hi` on lightningd's command line or in
# its config file. lightningd passes its value in `init`.
plugin.add_option(
    name="{{name}}-greeting",
    default="Hello",
    description="What {{name}}-hello says before the name",
    opt_type="string",
)

# State that a reload hands from the old version to the new one (with
# cln_autoreload_state). Bump schema when the meaning of its keys changes.
if keep_state is not None:
    state = keep_state(plugin, {"calls": 0}, schema=1)
else:
    state = {"calls": 0}


@plugin.init()
def init(options, configuration, plugin, **kwargs):
    plugin.log("{{name}} version {} started".format(VERSION))
    if keep_state is None:
        plugin.log("cln_autoreload_state is not installed (pip install -r "
                   "requirements.txt): the state starts again at every "
                   "reload", level="warn")


# A method: `lightning-cli {{name}}-hello [name]`, by position or by name.
@plugin.method("{{name}}-hello")
def hello(plugin, name="world"):
    """Greet someone (default: world)."""
    state["calls"] += 1
    greeting = plugin.get_option("{{name}}-greeting")
    return {"greeting": "{}, {}!".format(greeting, name),
            "version": VERSION,
            "calls": state["calls"]}


# A hook: lightningd waits for the answer. "continue" lets the peer in.
@plugin.hook("peer_connected")
def on_peer_connected(peer, plugin, **kwargs):
    plugin.log("peer_connected hook: {}".format(peer.get("id")))
    return {"result": "continue"}


# A notification: lightningd tells, nobody answers. Take **kwargs: later
# lightningd versions may add fields.
@plugin.subscribe("connect")
def on_connect(plugin, connect=None, **kwargs):
    plugin.log("connect notification: {}".format((connect or {}).get("id")))


plugin.run()
