#!/usr/bin/env python3
"""A pyln-client plugin that binds a TCP port in `init`, where real plugins
(an HTTP or gRPC server, a websocket) bind theirs, for cln-autoreload's
tests.

Option `portinit-port` (int, required): the port on 127.0.0.1, bound with
SO_REUSEADDR off and listened on for as long as it runs. When it is taken,
the bind's OSError escapes `init`, and pyln-client answers `init` with an
error (`Error while processing init: [Errno 98] Address already in use`),
writing nothing to stderr.

`portinit` answers {"version": VERSION, "port", "pid"}; VERSION is the line
after the shebang.
"""
VERSION = "v1"
import os
import socket

from pyln.client import Plugin

plugin = Plugin()
plugin.add_option("portinit-port", None, "the TCP port to listen on", opt_type="int")
LISTENER = []


@plugin.init()
def init(options, configuration, plugin, **kwargs):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
    s.bind(("127.0.0.1", int(options["portinit-port"])))
    s.listen(16)
    LISTENER.append(s)


@plugin.method("portinit")
def portinit(plugin):
    return {"version": VERSION, "port": LISTENER[0].getsockname()[1], "pid": os.getpid()}


plugin.run()
