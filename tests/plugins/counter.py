#!/usr/bin/env python3
"""A pyln-client plugin that keeps a counter in lightningd's datastore, as
real plugins keep what must outlive them, for cln-autoreload's tests.

In `init` it reads the counter (key ["counter", "calls"]) with
`listdatastore`; each `count` call adds one in memory and writes it back
with `datastore` (create-or-replace) before answering. A version whose
init read the counter while the old version still counted starts behind,
and the increments made meanwhile are lost.

`count` answers {"calls": the counter, "version": VERSION}; VERSION is the
line after the shebang.
"""
VERSION = "v1"
from pyln.client import Plugin

plugin = Plugin()
KEY = ["counter", "calls"]
state = {"calls": 0}


@plugin.init()
def init(options, configuration, plugin, **kwargs):
    found = plugin.rpc.call("listdatastore", {"key": KEY})["datastore"]
    if found:
        state["calls"] = int(found[0]["string"])


@plugin.method("count")
def count(plugin):
    state["calls"] += 1
    plugin.rpc.call("datastore", {"key": KEY, "string": str(state["calls"]),
                                  "mode": "create-or-replace"})
    return {"calls": state["calls"], "version": VERSION}


plugin.run()
