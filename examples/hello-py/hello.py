#!/usr/bin/env python3
"""hello.py: a small Core Lightning plugin written with pyln-client.

Copy it as a starting point for your own plugin. Run it under
cln-autoreload and every time you save this file, the plugin is restarted
with your changes, without restarting lightningd:

    pip install -r requirements.txt
    lightningd --plugin=/path/to/cln-autoreload \\
               --autoreload-plugin=/path/to/hello.py

Then try it:

    lightning-cli hello
    lightning-cli hello Alice
    lightning-cli -k hello name=Bob

`hello` also says how many times it was called since the node started
("calls"): the count survives reloads, because the plugin keeps it with
cln_autoreload_state (python/ in the cln-autoreload repository), which hands
the old version's state to the new one. Run from the repository, this file
finds it there; for your own plugin install it next to pyln-client:

    pip install /path/to/cln-autoreload/python

Remember: stdout is the channel to lightningd. Never print() in a plugin,
use plugin.log() (it shows up in lightningd's log) instead.
"""

import os
import sys

from pyln.client import Plugin

try:
    from cln_autoreload_state import keep_state
except ImportError:
    # Not installed: use the copy in the cln-autoreload repository this file
    # is in (found from its real path, so a symlink to it works too).
    sys.path.insert(0, os.path.join(
        os.path.dirname(os.path.realpath(__file__)), "..", "..", "python"))
    try:
        from cln_autoreload_state import keep_state
    except ImportError:  # a copy elsewhere: count, but only until a reload
        keep_state = None

# One Plugin object per plugin. It talks JSON-RPC with lightningd over
# stdin/stdout and builds the manifest from the decorators below.
plugin = Plugin()

# A command line / config file option: `--hello-greeting=Hi`.
# Its value is known from `init` on, through plugin.get_option().
plugin.add_option(
    name="hello-greeting",
    default="Hello",
    description="What to say in front of the name in `hello`",
    opt_type="string",
)

# The plugin's state: one dict, handed from a version to the next when the
# file changes. Bump schema when you change what its keys mean.
if keep_state is not None:
    state = keep_state(plugin, {"calls": 0}, schema=1)
else:
    state = {"calls": 0}


@plugin.init()
def init(options, configuration, plugin, **kwargs):
    """Called once, when lightningd has told us our options and config."""
    plugin.log("hello.py initialized, greeting is '{}'".format(
        options["hello-greeting"]))
    if keep_state is None:
        plugin.log("cln_autoreload_state not found (pip install "
                   "/path/to/cln-autoreload/python): the calls count starts "
                   "again at every reload", level="warn")


# An RPC method: `lightning-cli hello [name]`. pyln builds the usage string
# from the arguments (`[name]`, since it has a default; `plugin` is filled in
# by pyln) and the description from the docstring, so keep the docstring short.
# Parameters arrive by position or by name (`-k`); whatever you return is
# the result.
@plugin.method("hello")
def hello(plugin, name="world"):
    """Greet someone with the configured greeting."""
    greeting = plugin.get_option("hello-greeting")
    state["calls"] += 1
    return {"greeting": "{}, {}!".format(greeting, name),
            "calls": state["calls"]}


@plugin.subscribe("connect")
def on_connect(connect, plugin, **kwargs):
    """A notification: we are told a peer connected, we answer nothing.

    Always take **kwargs: lightningd may add fields in later versions.
    """
    plugin.log("peer {} connected ({})".format(
        connect.get("id"), connect.get("direction")))


@plugin.hook("peer_connected")
def on_peer_connected(peer, plugin, **kwargs):
    """A hook: lightningd waits for our answer before it goes on.

    Answer quickly, and answer something valid: "continue" lets the peer in,
    {"result": "disconnect", "error_message": "..."} would refuse it.
    """
    plugin.log("peer_connected hook for {}".format(peer.get("id")))
    return {"result": "continue"}


@plugin.subscribe("shutdown")
def on_shutdown(plugin, **kwargs):
    """lightningd (or cln-autoreload) asks us to exit: clean up, then go."""
    plugin.log("hello.py shutting down")
    sys.exit(0)


# Hand control to pyln: it reads requests until lightningd closes stdin.
plugin.run()
