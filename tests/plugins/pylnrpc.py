#!/usr/bin/env python3
"""A pyln-client plugin that calls lightningd through `plugin.rpc`, the way
real plugins do, for cln-autoreload's sandbox tests: pyln joins
`lightning-dir` and `rpc-file` itself, opens a connection per call, and
turns notifications on first when asked to pass them on.

- pyln-rpc method [params] [notify]: `{"ok": true, "result": ...,
  "messages": N}` or `{"ok": false, "error": ...}` (never an error answer)
"""
from pyln.client import Plugin, RpcError

plugin = Plugin()


@plugin.method("pyln-rpc")
def pyln_rpc(plugin, method, params=None, notify=False):
    """Calls `method` on lightningd over plugin.rpc."""
    messages = []
    try:
        if notify:
            with plugin.rpc.notify(lambda message=None, **kw: messages.append(message)):
                result = plugin.rpc.call(method, params or {})
        else:
            result = plugin.rpc.call(method, params or {})
        return {"ok": True, "result": result, "messages": len(messages)}
    except RpcError as e:
        return {"ok": False, "error": e.error}


plugin.run()
