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

Remember: stdout is the channel to lightningd. Never print() in a plugin,
use plugin.log() (it shows up in lightningd's log) instead.
"""

import sys

from pyln.client import Plugin

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


@plugin.init()
def init(options, configuration, plugin, **kwargs):
    """Called once, when lightningd has told us our options and config."""
    plugin.log("hello.py initialized, greeting is '{}'".format(
        options["hello-greeting"]))


# An RPC method: `lightning-cli hello [name]`. pyln builds the usage string
# from the arguments (`[name]`, since it has a default; `plugin` is filled in
# by pyln) and the description from the docstring, so keep the docstring short.
# Parameters arrive by position or by name (`-k`); whatever you return is
# the result.
@plugin.method("hello")
def hello(plugin, name="world"):
    """Greet someone with the configured greeting."""
    greeting = plugin.get_option("hello-greeting")
    return {"greeting": "{}, {}!".format(greeting, name)}


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
